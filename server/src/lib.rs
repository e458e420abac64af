//! `chat-server`: see the modules.

pub mod store;
