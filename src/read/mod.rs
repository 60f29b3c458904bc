//! Reading a lake table's rows into Arrow: scans with projection and filters, row addresses
//! (`_file`, `_row`), `take` by address, and splits of a table into parts.

pub mod columns;
pub mod rowaddr;
pub mod scan;
pub mod split;
