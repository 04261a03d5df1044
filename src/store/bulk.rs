//! Batch INSERTs: on PostgreSQL one multi-row statement for many rows, so a batch costs a few
//! round trips instead of one per row; on SQLite's native connection, one cached single-row
//! statement per row (no round trip to save there).

use super::exec::{Exec, Val};
use super::{Backend, StoreError};

/// `INSERT INTO table (cols) VALUES ($1, …), (…)` for `rows` rows. Only placeholders are
/// generated: no value is ever spliced into the text.
pub(super) fn insert_sql(backend: Backend, table: &str, columns: &[&str], rows: usize) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        tuples(backend, 1, rows, columns.len())
    )
}

/// `($1, $2), ($3, $4)` — `rows` tuples of `width` placeholders, numbered from `first`.
///
/// SQLite gets anonymous `?` placeholders: it treats `$N` as *named* parameters and looks each
/// new name up among the earlier ones while preparing, which is quadratic — measured here, a
/// 2000-row insert took 850 ms with `$N` and 8 ms with `?`. (So a statement mixing these with
/// its own parameters must use `?` throughout on SQLite: see `param`.)
pub(super) fn tuples(backend: Backend, first: usize, rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    let mut n = first;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&param(backend, n));
            n += 1;
        }
        sql.push(')');
    }
    sql
}

/// The `n`-th (1-based) positional parameter: `$n` on PostgreSQL, `?` on SQLite (bound in order).
pub(super) fn param(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

/// Inserts `rows` (each the values of `columns`, in order) through `db`. On PostgreSQL one
/// multi-row statement per chunk (a round trip each); on SQLite, whose statements run in the
/// same thread without a round trip, one cached single-row statement per row: a multi-row
/// text differs with every batch size and would be prepared anew each time.
pub(super) async fn insert_values<E: Exec>(
    db: &mut E,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    match db.backend() {
        Backend::Sqlite => {
            let sql = insert_sql(Backend::Sqlite, table, columns, 1);
            for row in rows {
                db.exec(&sql, row).await?;
            }
        }
        Backend::Postgres => {
            let per_chunk = (30_000 / columns.len()).max(1);
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_chunk).collect();
                let sql = insert_sql(Backend::Postgres, table, columns, chunk.len());
                db.exec(&sql, chunk.into_iter().flatten().collect()).await?;
            }
        }
    }
    Ok(())
}

/// One table's rows for `insert_together`.
pub(super) struct Rows<'a> {
    pub table: &'a str,
    pub columns: &'a [&'a str],
    pub rows: Vec<Vec<Val>>,
}

/// Parameters past which `insert_together` sends a statement per table (PostgreSQL takes
/// at most 65,535 in one statement).
const TOGETHER_PARAMS: usize = 30_000;

/// Inserts the rows of several tables. On PostgreSQL in one statement when they fit: every
/// table but the last in a data-modifying `WITH`, so a batch's leads, events and keys cost one
/// round trip, not one each (foreign keys between them are checked at the statement's end, when
/// all are in); else as `insert_values` does, table by table.
pub(super) async fn insert_together<E: Exec>(
    db: &mut E,
    tables: Vec<Rows<'_>>,
) -> Result<(), StoreError> {
    let mut tables: Vec<Rows<'_>> = tables.into_iter().filter(|t| !t.rows.is_empty()).collect();
    let params: usize = tables.iter().map(|t| t.rows.len() * t.columns.len()).sum();
    if db.backend() == Backend::Sqlite || tables.len() < 2 || params > TOGETHER_PARAMS {
        for t in tables {
            insert_values(db, t.table, t.columns, t.rows).await?;
        }
        return Ok(());
    }
    let last = tables
        .pop()
        .ok_or_else(|| StoreError::Corrupt("no rows to insert".into()))?;
    let (mut sql, mut values, mut next) = (String::from("WITH "), Vec::with_capacity(params), 1);
    for (i, t) in tables.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "w{i} AS ({})",
            numbered_insert(t.table, t.columns, next, t.rows.len())
        ));
        next += t.rows.len() * t.columns.len();
        values.extend(t.rows.into_iter().flatten());
    }
    sql.push(' ');
    sql.push_str(&numbered_insert(
        last.table,
        last.columns,
        next,
        last.rows.len(),
    ));
    values.extend(last.rows.into_iter().flatten());
    db.exec(&sql, values).await?;
    Ok(())
}

/// `INSERT INTO table (cols) VALUES …` with PostgreSQL placeholders numbered from `first`.
fn numbered_insert(table: &str, columns: &[&str], first: usize, rows: usize) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        tuples(Backend::Postgres, first, rows, columns.len())
    )
}

#[cfg(test)]
mod tests {
    use super::{Backend, insert_sql, numbered_insert, tuples};

    #[test]
    fn tables_inserted_together_number_their_placeholders_on_from_the_last() {
        assert_eq!(
            numbered_insert("t", &["a", "b"], 5, 2),
            "INSERT INTO t (a, b) VALUES ($5, $6), ($7, $8)"
        );
    }

    #[test]
    fn placeholders_are_numbered_across_rows_on_postgres_and_anonymous_on_sqlite() {
        assert_eq!(
            insert_sql(Backend::Postgres, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(Backend::Sqlite, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(tuples(Backend::Postgres, 3, 2, 1), "($3), ($4)");
    }
}
