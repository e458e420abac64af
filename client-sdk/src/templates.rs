//! Templates and quick replies on [`Client`]: save (create or optimistic
//! update), delete, list (the user's own and the firm's, every page) and
//! render in a conversation. The rules are the server's; see `PutTemplate`
//! and `Template` in `schemas/chat/v1/chat.proto` for the placeholders.

use crate::client::{Client, want};
use crate::error::ClientError;
use chat_protocol::v1::{self, command::Body, reply};

impl Client {
    /// Creates a template (`id` 0) or updates one (`id` set; with
    /// `expected_updated_at_ms` set, only over that version); returns it as saved.
    pub async fn put_template(&self, put: v1::PutTemplate) -> Result<v1::Template, ClientError> {
        let r = self.request(Body::PutTemplate(put)).await?;
        want(r, "template", |r| match r {
            reply::Result::Template(t) => t.template,
            _ => None,
        })
    }

    /// Creates a template of `scope` named `name` (the word after `/`).
    pub async fn create_template(
        &self,
        scope: v1::TemplateScope,
        name: impl Into<String>,
        body: impl Into<String>,
    ) -> Result<v1::Template, ClientError> {
        let put = v1::PutTemplate { scope: scope as i32, name: name.into(), body: body.into(), ..Default::default() };
        self.put_template(put).await
    }

    /// Deletes one of the user's personal templates, or (admins) a firm one.
    pub async fn delete_template(&self, id: u64) -> Result<(), ClientError> {
        self.request(Body::DeleteTemplate(v1::DeleteTemplate { id })).await.map(|_| ())
    }

    /// Every template the user may use: their personal ones, then the
    /// firm's, each by name (all pages).
    pub async fn list_templates(&self) -> Result<Vec<v1::Template>, ClientError> {
        let mut all = Vec::new();
        let mut page = String::new();
        loop {
            let r = self.request(Body::ListTemplates(v1::ListTemplates { page })).await?;
            let list = want(r, "template list", |r| match r {
                reply::Result::Templates(l) => Some(l),
                _ => None,
            })?;
            all.extend(list.templates);
            if list.next.is_empty() {
                return Ok(all);
            }
            page = list.next;
        }
    }

    /// A template filled in with a conversation's values (the user must be a
    /// member); `missing` names the placeholders that had none there.
    pub async fn render_template(
        &self,
        template_id: u64,
        conversation_id: u64,
    ) -> Result<v1::RenderedTemplate, ClientError> {
        let r = self.request(Body::RenderTemplate(v1::RenderTemplate { template_id, conversation_id })).await?;
        want(r, "rendered template", |r| match r {
            reply::Result::Rendered(t) => Some(t),
            _ => None,
        })
    }
}
