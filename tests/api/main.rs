//! Integration tests: the real facade on 127.0.0.1:0, talking real HTTP to the real emulator,
//! with RS256 tokens signed by the emulator's keys. One binary, one file per feature.

mod admission;
mod auth;
mod bounds;
mod connections;
mod credential;
mod edge;
mod errors;
mod guard;
mod helpers;
mod identity;
mod openapi;
mod operations;
mod proxy;
mod reads;
mod redis;
mod redis_tls;
mod review;
mod start;
mod ui;
mod upstream;
mod webhooks;
