//! Full-text search on [`Client`]: one page of hits across the user's
//! conversations (newest first, with a highlighted snippet), or a query of
//! words alone. Filters and paging are the fields of `Search` in
//! `schemas/chat/v1/chat.proto`; pass a page's `next_cursor` back as
//! `cursor` for the next one.

use crate::client::{Client, want};
use crate::error::ClientError;
use chat_protocol::v1::{self, command::Body, reply};

impl Client {
    /// One page of hits for `search` (query, filters, cursor, limit).
    pub async fn search(&self, search: v1::Search) -> Result<v1::SearchResults, ClientError> {
        let r = self.request(Body::Search(search)).await?;
        want(r, "search results", |r| match r {
            reply::Result::Search(s) => Some(s),
            _ => None,
        })
    }

    /// The first page of hits for `query` across all the user's conversations.
    pub async fn search_text(&self, query: impl Into<String>) -> Result<v1::SearchResults, ClientError> {
        self.search(v1::Search { query: query.into(), ..Default::default() }).await
    }
}
