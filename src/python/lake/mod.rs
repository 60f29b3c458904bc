//! Bindings of [`crate::lake`] and [`crate::read`]: `Table` and `sql`.

pub mod sql;
pub mod table;
