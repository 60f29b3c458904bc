//! lakevec's Rust log records in Python's `logging` (through pyo3-log): each record goes to
//! the Python logger named after its Rust module (`lakevec.index.publish`, `lakevec.lake.table`,
//! ...), so `logging.getLogger("lakevec")` configures them all.
//!
//! Quiet by default: records below WARNING are dropped in Rust before they cost a call into
//! Python. `LAKEVEC_LOG=debug` (or `trace`, `info`, `warn`, `error`, `off`) sets the level read
//! at import, parsed here only: the module exports the matching Python level as `_LOG_LEVEL`,
//! which `lakevec/__init__.py` gives the `lakevec` logger (with a stderr handler if it has
//! none). Records from worker threads take the GIL to be emitted, which is safe because every
//! long call releases it (`python::call`).

use pyo3::prelude::*;

/// The level `LAKEVEC_LOG` names (None: unset or not a level name; records then stop at
/// WARNING).
fn level(v: Option<&str>) -> Option<log::LevelFilter> {
    Some(match v?.trim().to_ascii_lowercase().as_str() {
        "trace" => log::LevelFilter::Trace,
        "debug" => log::LevelFilter::Debug,
        "info" => log::LevelFilter::Info,
        "warn" | "warning" => log::LevelFilter::Warn,
        "error" => log::LevelFilter::Error,
        "off" => log::LevelFilter::Off,
        _ => return None,
    })
}

/// The Python `logging` level of `f` (pyo3-log maps TRACE to 5, below DEBUG); None for Off.
fn python_level(f: log::LevelFilter) -> Option<u8> {
    f.to_level().map(|l| match l {
        log::Level::Trace => 5,
        log::Level::Debug => 10,
        log::Level::Info => 20,
        log::Level::Warn => 30,
        log::Level::Error => 40,
    })
}

/// Install the bridge (once per process; a second extension's logger already in place is
/// left alone). Python loggers are looked up once and their levels on every record, so a
/// level set later in Python applies. Returns the Python level `LAKEVEC_LOG` names, if it
/// names one (not `off`).
pub fn install(py: Python<'_>) -> PyResult<Option<u8>> {
    let named = level(std::env::var("LAKEVEC_LOG").ok().as_deref());
    let filter = named.unwrap_or(log::LevelFilter::Warn);
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?.filter(filter);
    // Err: another logger is installed in this process (it keeps its own level).
    let _ = logger.install();
    Ok(named.and_then(python_level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_the_environment_value() {
        assert_eq!(level(None), None);
        assert_eq!(level(Some(" DEBUG ")), Some(log::LevelFilter::Debug));
        assert_eq!(level(Some("Warning")), Some(log::LevelFilter::Warn));
        assert_eq!(level(Some("off")), Some(log::LevelFilter::Off));
        assert_eq!(level(Some("verbose")), None);
        assert_eq!(python_level(log::LevelFilter::Trace), Some(5));
        assert_eq!(python_level(log::LevelFilter::Info), Some(20));
        assert_eq!(python_level(log::LevelFilter::Off), None);
    }
}
