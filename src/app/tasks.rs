//! The owner of the app's background tasks: loops, per-connection follow-ups, servers.
//! `shutdown` (or dropping the owner) stops them all; spawns after that are dropped unrun.

use crate::BoxedTask;
use std::future::Future;
use std::sync::Mutex;
use tokio::task::JoinSet;

pub struct Tasks(Mutex<Option<JoinSet<()>>>);

impl Default for Tasks {
    fn default() -> Self {
        Tasks(Mutex::new(Some(JoinSet::new())))
    }
}

impl Tasks {
    /// Runs `f` as one of ours (boxed: one task harness for all, see [`crate::spawn`]).
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.spawn_boxed(crate::boxed(f));
    }

    pub fn spawn_boxed(&self, f: BoxedTask<()>) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = set.as_mut() {
            // Finished tasks stay in the set until joined: reap them, or short ones pile up.
            while set.try_join_next().is_some() {}
            set.spawn(f);
        }
    }

    /// Tasks still running (or finished and not yet reaped).
    pub fn len(&self) -> usize {
        let set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.as_ref().map_or(0, JoinSet::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every task; later spawns do nothing.
    pub fn shutdown(&self) {
        let set = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut set) = set {
            set.abort_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn shutdown_stops_the_loops_and_refuses_new_ones() {
        let tasks = Tasks::default();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        tasks.spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(ticks.load(Ordering::Relaxed) > 0);
        tasks.shutdown();
        tokio::task::yield_now().await;
        let after = ticks.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(ticks.load(Ordering::Relaxed), after, "the loop still runs");
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        tasks.spawn(async move {
            r.fetch_add(1, Ordering::Relaxed);
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn finished_tasks_are_reaped() {
        let tasks = Tasks::default();
        for _ in 0..100 {
            tasks.spawn(async {});
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        tasks.spawn(async {});
        assert!(tasks.len() < 10, "{}", tasks.len());
    }
}
