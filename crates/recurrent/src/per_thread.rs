//! [`PerThread`]: a value kept separately for each thread that uses it (a `Recur`'s state).
//!
//! Each `PerThread` owns a map from thread id to that thread's value. A thread that stores a
//! value also records a weak handle to the map in a thread-local list; when the thread ends, the
//! list's destructor removes the thread's entries from every map still alive. Dropping the
//! `PerThread` (the model) frees every thread's value at once. So memory follows the live
//! (thread, model) pairs, however many short-lived threads come and go.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::{self, ThreadId};

/// Something that can drop one thread's entry.
trait ForgetThread: Send + Sync {
    fn forget(&self, id: ThreadId);
}

/// The maps this thread has an entry in, emptied of its entries when the thread ends.
struct Owned {
    id: ThreadId,
    maps: Vec<Weak<dyn ForgetThread>>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        for m in self.maps.drain(..) {
            if let Some(m) = m.upgrade() {
                m.forget(self.id);
            }
        }
    }
}

thread_local! {
    static OWNED: RefCell<Option<Owned>> = const { RefCell::new(None) };
}

/// Registers `map` for clean-up when this thread ends. Handles to maps already dropped are
/// pruned whenever the list doubles, so a long-lived thread touching many short-lived models
/// keeps a list proportional to the live ones.
fn register(map: Weak<dyn ForgetThread>) {
    // During thread teardown the list may be gone already: then there is nothing to clean up
    // later either (the entry is removed when the model drops).
    let _ = OWNED.try_with(|o| {
        let mut o = o.borrow_mut();
        let o = o.get_or_insert_with(|| Owned { id: thread::current().id(), maps: Vec::new() });
        if o.maps.len() >= 8 && o.maps.len().is_power_of_two() {
            o.maps.retain(|m| m.strong_count() > 0);
        }
        o.maps.push(map);
    });
}

struct Table<T>(Mutex<HashMap<ThreadId, T>>);

impl<T: Send> ForgetThread for Table<T> {
    fn forget(&self, id: ThreadId) {
        let removed = lock(&self.0).remove(&id);
        drop(removed); // outside the lock
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One value per thread.
pub(crate) struct PerThread<T: Send + 'static> {
    table: Arc<Table<T>>,
}

impl<T: Clone + Send + 'static> PerThread<T> {
    pub(crate) fn new() -> PerThread<T> {
        PerThread { table: Arc::new(Table(Mutex::new(HashMap::new()))) }
    }

    /// The calling thread's value (a clone), or `None` if it has not stored one.
    pub(crate) fn get(&self) -> Option<T> {
        lock(&self.table.0).get(&thread::current().id()).cloned()
    }

    /// Stores the calling thread's value.
    pub(crate) fn set(&self, value: T) {
        let id = thread::current().id();
        let old = lock(&self.table.0).insert(id, value);
        if old.is_none() {
            let weak: Weak<dyn ForgetThread> = Arc::downgrade(&self.table) as Weak<dyn ForgetThread>;
            register(weak);
        }
        drop(old);
    }

    /// Applies `f` to the calling thread's value, if any.
    pub(crate) fn update(&self, f: impl FnOnce(&T) -> T) {
        let id = thread::current().id();
        let mut map = lock(&self.table.0);
        if let Some(v) = map.get_mut(&id) {
            *v = f(v);
        }
    }

    /// Drops the calling thread's value.
    pub(crate) fn clear(&self) {
        let removed = lock(&self.table.0).remove(&thread::current().id());
        drop(removed);
    }

    /// Drops every thread's value.
    pub(crate) fn clear_all(&self) {
        let removed = std::mem::take(&mut *lock(&self.table.0));
        drop(removed);
    }

    /// How many threads hold a value.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.table.0).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_sees_its_own_value() {
        let p = Arc::new(PerThread::<u32>::new());
        p.set(1);
        let q = p.clone();
        thread::spawn(move || {
            assert_eq!(q.get(), None);
            q.set(2);
            assert_eq!(q.get(), Some(2));
        })
        .join()
        .unwrap();
        assert_eq!(p.get(), Some(1));
    }

    #[test]
    fn a_finished_thread_leaves_nothing_behind() {
        let p = Arc::new(PerThread::<Vec<u8>>::new());
        for _ in 0..200 {
            let q = p.clone();
            thread::spawn(move || q.set(vec![0; 1024])).join().unwrap();
        }
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn clear_and_clear_all() {
        let p = PerThread::<u32>::new();
        p.set(3);
        p.update(|v| v + 1);
        assert_eq!(p.get(), Some(4));
        p.clear();
        assert_eq!(p.get(), None);
        p.set(5);
        p.clear_all();
        assert_eq!(p.len(), 0);
    }
}
