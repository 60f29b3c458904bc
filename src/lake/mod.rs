//! Lake tables: opening Parquet files/folders, Delta and Iceberg tables on any object store,
//! their versions, data files, deletes and changes. Knows nothing of reading rows
//! ([`crate::read`]) or of indexes.

pub mod changes;
pub mod datafiles;
pub mod deletion_vector;
pub mod delta;
pub mod delta_kernel;
pub mod iceberg;
pub mod iceberg_io;
pub mod listing;
pub mod local_store;
pub mod parquet;
pub mod pin;
pub mod session;
pub mod storage;
pub mod table;
