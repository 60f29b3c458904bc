//! Process-wide executors owned by lakevec: a tokio runtime for I/O and a rayon pool for CPU
//! kernels.
//!
//! Nothing is started at import. Both are created on first use and recreated when the
//! process id changes: after `fork()` the child inherits the parent's data structures but
//! none of its threads (rayon-rs/rayon#708, delta-rs#2744), so the inherited executors are
//! leaked, never used or dropped (dropping would wait for threads that do not exist).
//!
//! A `fork()` first waits for lakevec's threads to leave every lock (a `pthread_atfork`
//! prepare handler, registered when the runtime is first built; see [`prepare_fork`]): calls
//! in flight finish, and the runtime is shut down (or, held by an open stream, left parked).
//! Otherwise the child inherits locks held by threads it does not have (observed: SIGSEGV
//! and hangs in a forked child's tokio workers, in `parking_lot`'s park table). The parent
//! rebuilds the runtime on next use.
//!
//! Thread count, in order of precedence: an explicit `num_threads` argument,
//! `LAKEVEC_NUM_THREADS`, `RAYON_NUM_THREADS`, then the CPUs in this process's affinity mask
//! (which is what container limits and `taskset` restrict).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::error::{LakeError, Result};

struct Owned<T> {
    pid: u32,
    value: Arc<T>,
}

static RUNTIME: Mutex<Option<Owned<tokio::runtime::Runtime>>> = Mutex::new(None);
/// Rayon pools by thread count, with the pid that built them (rebuilt in a forked child).
type Pools = (u32, HashMap<usize, Arc<rayon::ThreadPool>>);
static POOLS: Mutex<Option<Pools>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (they only hold
    // Arcs), so a poisoned lock is taken over rather than propagated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Number of CPUs this process may run on (its affinity mask), at least 1.
pub fn available_cpus() -> usize {
    #[cfg(target_os = "linux")]
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is valid; the pointer and the
    // size passed to `sched_getaffinity` describe that local value, which outlives the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let n = libc::CPU_COUNT(&set);
            if n > 0 {
                return n as usize;
            }
        }
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn env_threads(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

/// The default number of worker threads (see the module docs for the order of precedence).
pub fn default_num_threads() -> usize {
    env_threads("LAKEVEC_NUM_THREADS").or_else(|| env_threads("RAYON_NUM_THREADS")).unwrap_or_else(available_cpus)
}

/// Resolve an optional user `num_threads` to a positive count.
pub fn resolve_threads(num_threads: Option<usize>) -> Result<usize> {
    match num_threads {
        Some(0) => Err(LakeError::InvalidArgument("num_threads must be a positive integer".into())),
        Some(n) => Ok(n),
        None => Ok(default_num_threads()),
    }
}

/// Calls currently running on the runtime (see [`enter`]).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Marks a call in progress for its lifetime, so a concurrent fork leaves the runtime alone.
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Mark the start of a call that uses the runtime.
pub fn enter() -> InFlight {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    InFlight(())
}

/// Set from a fork's prepare handler until the fork returns: calls in flight then neither
/// take the GIL (the forking thread holds it) nor start new runtime work.
static FORK_PENDING: AtomicBool = AtomicBool::new(false);

/// How long a `fork()` waits for lakevec's calls in flight and its runtime to go quiet.
const FORK_WAIT: Duration = Duration::from_secs(30);

/// Whether a fork is waiting for lakevec's threads (see [`prepare_fork`]).
pub fn fork_pending() -> bool {
    FORK_PENDING.load(Ordering::SeqCst)
}

/// Every worker of `rt` parked (tokio's park/unpark count is odd while parked) and nothing
/// queued: no worker is inside a lock.
fn runtime_parked(rt: &tokio::runtime::Runtime) -> Option<Vec<u64>> {
    let m = rt.metrics();
    let counts: Vec<u64> = (0..m.num_workers()).map(|w| m.worker_park_unpark_count(w)).collect();
    (m.global_queue_depth() == 0 && counts.iter().all(|c| c % 2 == 1)).then_some(counts)
}

/// `fork()`'s prepare handler. A child inherits the parent's memory but only the forking
/// thread: any lock another thread held at that instant stays locked in the child for good
/// (observed: a child's new tokio workers hung in `parking_lot`'s park table, whose bucket
/// locks the parent's busy workers held). So the fork waits (up to [`FORK_WAIT`]) until no
/// thread of lakevec's is inside one: calls in flight finish (they do not need the GIL while
/// a fork is pending), then the runtime is shut down when nothing else holds it (its workers
/// joined), or else (an open read stream holds it) until every worker has stayed parked
/// over 20 ms. The child builds fresh executors on first use. That last case stays unsafe:
/// parked workers remain queued in `parking_lot`'s table, and the child's new threads
/// reuse their stacks (glibc's stack cache), so a child may hang; README says so.
extern "C" fn prepare_fork() {
    FORK_PENDING.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + FORK_WAIT;
    // (A call whose signal check is waiting for the GIL this thread holds cannot finish: the
    // fork then waits out FORK_WAIT, by which time the call's work has gone quiet.)
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let Ok(mut guard) = RUNTIME.try_lock() else { return };
    let pid = std::process::id();
    let Some(owned) = guard.take() else { return };
    if owned.pid != pid {
        std::mem::forget(owned.value);
        return;
    }
    match Arc::try_unwrap(owned.value) {
        // Joins the workers (bounded): none is left inside a lock when the process forks.
        Ok(rt) => rt.shutdown_timeout(Duration::from_secs(2)),
        // Still referenced (an open stream): keep it, and let it go quiet.
        Err(shared) => {
            let mut last = None;
            let mut stable = 0;
            while stable < 4 && std::time::Instant::now() < deadline {
                let now = runtime_parked(&shared);
                stable = if now.is_some() && now == last { stable + 1 } else { 0 };
                last = now;
                std::thread::sleep(Duration::from_millis(5));
            }
            *guard = Some(Owned { pid, value: shared });
        }
    }
}

extern "C" fn after_fork_parent() {
    FORK_PENDING.store(false, Ordering::SeqCst);
}

extern "C" fn after_fork_child() {
    FORK_PENDING.store(false, Ordering::SeqCst);
    // No call of the parent's runs in the child (only the forking thread exists).
    IN_FLIGHT.store(0, Ordering::SeqCst);
}

fn register_fork_handler() {
    static ONCE: Once = Once::new();
    #[cfg(unix)]
    // SAFETY: `pthread_atfork` takes plain `extern "C" fn()` pointers with no arguments, which
    // the three handlers are; they are registered once per process (`Once`), never unwind (they
    // only touch atomics, `try_lock` and shut an idle runtime down) and stay valid for the
    // process's life.
    ONCE.call_once(|| unsafe {
        libc::pthread_atfork(Some(prepare_fork), Some(after_fork_parent), Some(after_fork_child));
    });
}

/// The tokio runtime for this process, created on first use and again after a fork.
pub fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    register_fork_handler();
    let pid = std::process::id();
    let mut guard = lock(&RUNTIME);
    if let Some(owned) = guard.as_ref() {
        if owned.pid == pid {
            return Ok(owned.value.clone());
        }
    }
    if let Some(stale) = guard.take() {
        // Inherited from the parent across fork: its threads are gone. Never drop it.
        std::mem::forget(stale.value);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(default_num_threads().max(2))
        .thread_name("lakevec-io")
        .enable_all()
        .build()
        .map_err(|e| LakeError::Internal(format!("cannot start the tokio runtime: {e}")))?;
    let rt = Arc::new(rt);
    *guard = Some(Owned { pid, value: rt.clone() });
    Ok(rt)
}

/// A rayon pool with `num_threads` threads (default: [`default_num_threads`]), owned by
/// lakevec, one per distinct size, created on first use and again after a fork.
pub fn pool(num_threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    let n = resolve_threads(num_threads)?;
    let pid = std::process::id();
    let mut guard = lock(&POOLS);
    let stale = matches!(guard.as_ref(), Some((p, _)) if *p != pid);
    if stale {
        if let Some((_, pools)) = guard.take() {
            std::mem::forget(pools);
        }
    }
    let (_, pools) = guard.get_or_insert_with(|| (pid, HashMap::new()));
    if let Some(p) = pools.get(&n) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("lakevec-cpu-{i}"))
        .build()
        .map_err(|e| LakeError::Internal(format!("cannot start a thread pool: {e}")))?;
    let p = Arc::new(p);
    pools.insert(n, p.clone());
    Ok(p)
}

/// A call's control block shared between the caller and the work: the cancellation flag
/// (set on Ctrl-C; the work polls it between units of work: row groups, batches, query
/// chunks) and a count of units done that kernels advance and the caller reads for a
/// progress bar (rows signed, queries searched).
#[derive(Clone, Default, Debug)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    done: Arc<std::sync::atomic::AtomicUsize>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
    /// Count `n` more units done (for progress reporting).
    pub fn advance(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    /// Units done so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }
    /// `Err(Cancelled)` once cancelled: use with `?` inside loops.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(LakeError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Run CPU work `f` on `pool` and await its result from async code (the tokio worker is not
/// blocked). When the awaiting future is dropped (Ctrl-C drops it, see `wait_for_future`),
/// `cancel` is set, so work that polls it stops early. A panic in `f` becomes `Internal`.
pub async fn run_cpu<T, F>(pool: Arc<rayon::ThreadPool>, cancel: CancelToken, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    struct CancelOnDrop(Option<CancelToken>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                c.cancel();
            }
        }
    }
    let mut guard = CancelOnDrop(Some(cancel));
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(LakeError::Internal(format!("panic: {msg}")))
        });
        let _ = tx.send(r);
    });
    let r = rx.await.map_err(|_| LakeError::Internal("a worker thread vanished".into()))?;
    guard.0 = None;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_cached_by_size() {
        let a = pool(Some(2)).unwrap();
        let b = pool(Some(2)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.current_num_threads(), 2);
        assert_eq!(pool(Some(1)).unwrap().current_num_threads(), 1);
    }

    #[test]
    fn zero_threads_is_rejected() {
        assert!(matches!(resolve_threads(Some(0)), Err(LakeError::InvalidArgument(_))));
    }

    #[test]
    fn runtime_is_reused() {
        let a = runtime().unwrap();
        let b = runtime().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.block_on(async { 1 + 1 }), 2);
    }

    #[test]
    fn cancel_token() {
        let t = CancelToken::new();
        assert!(t.check().is_ok());
        t.clone().cancel();
        assert!(matches!(t.check(), Err(LakeError::Cancelled)));
    }
}
