//! lakevec's Rust log records in Python's `logging` (through pyo3-log): each record goes to
//! the Python logger named after its Rust module (`lakevec.index.publish`, `lakevec.lake.table`,
//! ...), so `logging.getLogger("lakevec")` configures them all.
//!
//! Quiet by default: records below WARNING are dropped in Rust before they cost a call into
//! Python. `LAKEVEC_LOG=debug` (or `trace`, `info`, `warn`, `error`, `off`) sets the level read
//! at import; `lakevec/__init__.py` then gives the `lakevec` logger that level and, if it has no
//! handler, one to stderr. Records from worker threads take the GIL to be emitted, which is
//! safe because every long call releases it (`python::call`).

use pyo3::prelude::*;

/// The level `LAKEVEC_LOG` asks for (WARNING when unset or unknown).
fn level(v: Option<&str>) -> log::LevelFilter {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("trace") => log::LevelFilter::Trace,
        Some("debug") => log::LevelFilter::Debug,
        Some("info") => log::LevelFilter::Info,
        Some("error") => log::LevelFilter::Error,
        Some("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    }
}

/// Install the bridge (once per process; a second extension's logger already in place is
/// left alone). Python loggers are looked up once and their levels on every record, so a
/// level set later in Python applies.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let filter = level(std::env::var("LAKEVEC_LOG").ok().as_deref());
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?.filter(filter);
    // Err: another logger is installed in this process (it keeps its own level).
    let _ = logger.install();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_the_environment_value() {
        assert_eq!(level(None), log::LevelFilter::Warn);
        assert_eq!(level(Some(" DEBUG ")), log::LevelFilter::Debug);
        assert_eq!(level(Some("off")), log::LevelFilter::Off);
        assert_eq!(level(Some("verbose")), log::LevelFilter::Warn);
    }
}
