//! Templates in ScyllaDB: the `templates` table (partition `(scope, owner)`,
//! clustering `id`), written only by lightweight transactions so that a
//! create never overwrites and an update applies only over the version the
//! caller saw. It does not touch any other table.

use super::rows::{id_from_db, id_to_db};
use super::{ScyllaStore, StoreResult};
use crate::store::templates::{TemplateRecord, TemplateStore};

/// A `templates` row: id, scope, owner, name, body, updated_at_ms, updated_by.
type TemplateRow = (i64, i32, String, String, String, i64, String);

fn from_row((id, scope, owner, name, body, updated_at_ms, updated_by): TemplateRow) -> TemplateRecord {
    TemplateRecord {
        id: id_from_db(id),
        scope,
        owner,
        name,
        body,
        updated_at_ms: id_from_db(updated_at_ms),
        updated_by,
    }
}

impl TemplateStore for ScyllaStore {
    async fn templates(&self, scope: i32, owner: &str) -> StoreResult<Vec<TemplateRecord>> {
        const OP: &str = "templates";
        let owner = owner.to_owned();
        self.call(OP, false, move |i| async move {
            let rows: Vec<TemplateRow> = i.rows(OP, &i.st.select_templates, (scope, owner), None).await?;
            let mut out: Vec<TemplateRecord> = rows.into_iter().map(from_row).collect();
            out.sort_by_key(|t| t.id);
            Ok(out)
        })
        .await
    }

    async fn get_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<Option<TemplateRecord>> {
        const OP: &str = "get_template";
        let owner = owner.to_owned();
        self.call(OP, false, move |i| async move {
            let row: Option<TemplateRow> = i.one(OP, &i.st.select_template, (scope, owner, id_to_db(id)), None).await?;
            Ok(row.map(from_row))
        })
        .await
    }

    async fn put_template(&self, rec: &TemplateRecord, expected: Option<u64>) -> StoreResult<bool> {
        const OP: &str = "put_template";
        let t = rec.clone();
        self.call(OP, true, move |i| async move {
            let (stmt, result) = match expected {
                None => {
                    let stmt = &i.st.insert_template_if_absent;
                    let values =
                        (t.scope, t.owner, id_to_db(t.id), t.name, t.body, id_to_db(t.updated_at_ms), t.updated_by);
                    (stmt, i.exec(OP, stmt, values, None).await?)
                }
                Some(was) => {
                    let stmt = &i.st.update_template_if_unchanged;
                    let values = (
                        t.name,
                        t.body,
                        id_to_db(t.updated_at_ms),
                        t.updated_by,
                        t.scope,
                        t.owner,
                        id_to_db(t.id),
                        id_to_db(was),
                    );
                    (stmt, i.exec(OP, stmt, values, None).await?)
                }
            };
            i.applied(OP, stmt, result)
        })
        .await
    }

    async fn delete_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<bool> {
        const OP: &str = "delete_template";
        let owner = owner.to_owned();
        self.call(OP, true, move |i| async move {
            let stmt = &i.st.delete_template_if_exists;
            let result = i.exec(OP, stmt, (scope, owner, id_to_db(id)), None).await?;
            i.applied(OP, stmt, result)
        })
        .await
    }
}
