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

/// Whether the interpreter is shutting down. Python 3.11-3.13 end a daemon thread that takes
/// the GIL during finalization with `pthread_exit`, whose forced unwind through Rust frames
/// aborts the process ("FATAL: exception not rethrown"). Looked up at run time:
/// `Py_IsFinalizing` (3.13+) or `_Py_IsFinalizing` (3.8-3.12).
fn finalizing() -> bool {
    type IsFinalizing = unsafe extern "C" fn() -> std::ffi::c_int;
    static F: std::sync::OnceLock<Option<IsFinalizing>> = std::sync::OnceLock::new();
    let f = F.get_or_init(|| {
        [c"Py_IsFinalizing", c"_Py_IsFinalizing"].iter().find_map(|name| {
            // SAFETY: `dlsym` with RTLD_DEFAULT only looks a symbol up in the loaded objects.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            // SAFETY: both symbols are CPython functions `int (void)`, safe to call at any time.
            (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut std::ffi::c_void, IsFinalizing>(p) })
        })
    });
    // SAFETY: see above; the function takes no arguments and only reads a flag.
    f.is_some_and(|f| unsafe { f() } != 0)
}

/// Never return: the thread of a call that ends while the interpreter exits waits for the
/// process to end instead of taking the GIL (see [`finalizing`]).
fn park_forever() -> ! {
    loop {
        std::thread::park();
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
    let rt = runtime()?;
    let in_flight = crate::runtime::enter();
    // Boxed once, so the (large) future is never moved again.
    let mut fut = Box::pin(fut);
    let outcome = py.detach(move || {
        // Dropped when the closure returns, before the GIL is taken again (in reverse order:
        // the runtime first), so a pending fork can see this call finished.
        let _in_flight = in_flight;
        let rt = rt;
        let r = catch_unwind(AssertUnwindSafe(|| {
            // One poll first, in the runtime's context: a call with nothing to wait for (a
            // search of mapped segments) ends here without block_on's parking and timer set-up.
            // A pending future registered only this no-op waker; block_on polls it again with
            // its own, which every future then registers instead.
            {
                let _context = rt.enter();
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                    return Ok(r);
                }
            }
            rt.block_on(async {
                loop {
                    tokio::select! {
                        // the call first: a search done at its first poll never arms the timer
                        biased;
                        r = &mut fut => return Ok(r),
                        _ = tokio::time::sleep(SIGNAL_POLL) => {
                            // Not while a fork waits for this call (the forking thread holds
                            // the GIL) nor while the interpreter exits (see `finalizing`).
                            if crate::runtime::fork_pending() || finalizing() {
                                continue;
                            }
                            Python::attach(|py| {
                                py.check_signals()?;
                                tick(py)
                            })?;
                        }
                    }
                }
            })
        }));
        if finalizing() {
            drop(rt);
            drop(_in_flight);
            park_forever();
        }
        r
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

/// A [`wait_for_future_with`] tick that calls `progress(phase, done, total)` with the units of
/// work counted on `token` ([`CancelToken::advance`]); nothing without `progress`.
pub fn counting_ticker(
    progress: Option<Py<PyAny>>,
    phase: &'static str,
    total: usize,
    token: CancelToken,
) -> impl FnMut(Python<'_>) -> PyResult<()> + Send {
    move |py| match &progress {
        Some(cb) => cb.call1(py, (phase, token.done().min(total), total)).map(|_| ()),
        None => Ok(()),
    }
}

/// [`cpu`] that reports progress: every poll (100 ms) calls `progress(phase, done, total)`
/// with the units of work `f` counted on its token ([`counting_ticker`]).
pub fn cpu_progress<T: Send + 'static>(
    py: Python<'_>,
    num_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
    phase: &'static str,
    total: usize,
    f: impl FnOnce(CancelToken) -> Result<T> + Send + 'static,
) -> PyResult<T> {
    let cancel = CancelToken::new();
    let (c, tick) = (cancel.clone(), counting_ticker(progress, phase, total, cancel.clone()));
    wait_for_future_with(py, async move { run_cpu(pool(num_threads)?, cancel, move || f(c)).await }, tick)
}

/// Run a short synchronous core call, turning a panic into `InternalError`.
#[allow(dead_code)]
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(PyErr::from),
        Err(p) => Err(PyErr::from(LakeError::Internal(format!("panic: {}", panic_message(p))))),
    }
}
