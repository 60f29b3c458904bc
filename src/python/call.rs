//! The one way Python calls into long-running Rust: release the GIL, stay interruptible, catch
//! panics, map errors. (The pattern of datafusion-python's `wait_for_future`.)

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use pyo3::prelude::*;

use crate::error::{LakeError, Result};
use crate::runtime::{pool, run_cpu, runtime, CancelToken};

/// How often a waiting call checks for Ctrl-C (and other Python signals).
const SIGNAL_POLL: Duration = Duration::from_millis(100);

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Run `fut` on lakevec's tokio runtime with the GIL released. Every 100 ms the calling
/// thread re-acquires the GIL to run Python's signal handlers; a `KeyboardInterrupt` (or any
/// exception a handler raises) drops the future, which cancels its tasks, and is re-raised.
/// A panic becomes `lakevec.exceptions.InternalError`, never `PanicException`.
pub fn wait_for_future<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T>> + Send,
    T: Send,
{
    wait_for_future_with(py, fut, |_| Ok(()))
}

/// [`wait_for_future`] that also calls `tick` with the GIL held at every poll (progress bars).
pub fn wait_for_future_with<F, T>(
    py: Python<'_>,
    fut: F,
    mut tick: impl FnMut(Python<'_>) -> PyResult<()> + Send,
) -> PyResult<T>
where
    F: Future<Output = Result<T>> + Send,
    T: Send,
{
    let _in_flight = crate::runtime::enter();
    let rt = runtime()?;
    let outcome = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                tokio::pin!(fut);
                loop {
                    tokio::select! {
                        r = &mut fut => return Ok(r),
                        _ = tokio::time::sleep(SIGNAL_POLL) => {
                            Python::attach(|py| {
                                py.check_signals()?;
                                tick(py)
                            })?;
                        }
                    }
                }
            })
        }))
    });
    match outcome {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(PyErr::from(e)),
        Ok(Err(signal)) => Err(signal),
        Err(p) => Err(PyErr::from(LakeError::Internal(format!("panic: {}", panic_message(p))))),
    }
}

/// Run CPU work on lakevec's pool, GIL released and interruptible.
pub fn cpu<T: Send + 'static>(
    py: Python<'_>,
    num_threads: Option<usize>,
    f: impl FnOnce(CancelToken) -> Result<T> + Send + 'static,
) -> PyResult<T> {
    wait_for_future(py, async move {
        let cancel = CancelToken::new();
        let c = cancel.clone();
        run_cpu(pool(num_threads)?, cancel, move || f(c)).await
    })
}

/// Run a short synchronous core call, turning a panic into `InternalError`.
#[allow(dead_code)]
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(PyErr::from),
        Err(p) => Err(PyErr::from(LakeError::Internal(format!("panic: {}", panic_message(p))))),
    }
}
