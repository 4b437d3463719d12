//! Byte weights of batches: the inline size of every element plus the heap bytes owned by the
//! element types that report them ([`HeapSize`]), so channel credits bound memory, not only rows.
//!
//! Types without drop glue (integers, floats, `Copy` tuples, `&'static str`) own no heap: their
//! batches weigh `len * size_of::<T>()`, decided at compile time, with no work per element.
//! `String`, `Vec<u8>`, `Box<str>` and `Box<[u8]>` report their allocations out of the box; other
//! types do after [`register_heap_size`], and weigh their inline size until then.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Heap bytes an element owns beyond its inline size (its allocations' capacity).
pub trait HeapSize {
    /// Bytes allocated on the heap by this value.
    fn heap_bytes(&self) -> usize;
}

impl HeapSize for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl HeapSize for Vec<u8> {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl HeapSize for Box<str> {
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl HeapSize for Box<[u8]> {
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

type Weigher = Arc<dyn Fn(&dyn Any) -> usize + Send + Sync>;

/// Whether any type was registered (until then the registry is never read).
static REGISTERED: AtomicBool = AtomicBool::new(false);

fn registry() -> &'static RwLock<HashMap<TypeId, Weigher>> {
    static R: OnceLock<RwLock<HashMap<TypeId, Weigher>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Makes batches of `T` weigh the heap bytes each element reports (channels then count them
/// against their byte capacity). Registering a type again replaces nothing.
pub fn register_heap_size<T: HeapSize + Send + 'static>() {
    let w: Weigher = Arc::new(|any: &dyn Any| {
        any.downcast_ref::<Vec<T>>()
            .map_or(0, |v| v.iter().map(HeapSize::heap_bytes).sum())
    });
    if let Ok(mut r) = registry().write() {
        r.entry(TypeId::of::<T>()).or_insert(w);
        REGISTERED.store(true, Ordering::Release);
    }
}

fn sum<T: HeapSize + 'static>(any: &dyn Any) -> Option<usize> {
    any.downcast_ref::<Vec<T>>()
        .map(|v| v.iter().map(HeapSize::heap_bytes).sum())
}

/// The weight of a batch in bytes: inline size of its elements plus the heap bytes they report.
#[allow(
    clippy::ptr_arg,
    reason = "the element type is found by downcasting the Vec"
)]
pub fn batch_bytes<T: 'static>(batch: &Vec<T>) -> usize {
    let inline = batch.len() * std::mem::size_of::<T>().max(1);
    if !std::mem::needs_drop::<T>() || batch.is_empty() {
        return inline;
    }
    let any = batch as &dyn Any;
    let heap = sum::<String>(any)
        .or_else(|| sum::<Vec<u8>>(any))
        .or_else(|| sum::<Box<str>>(any))
        .or_else(|| sum::<Box<[u8]>>(any))
        .or_else(|| {
            if !REGISTERED.load(Ordering::Acquire) {
                return None;
            }
            let w = registry()
                .read()
                .ok()
                .and_then(|r| r.get(&TypeId::of::<T>()).cloned())?;
            Some(w(any))
        })
        .unwrap_or(0);
    inline + heap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_size_elements_weigh_their_inline_size() {
        assert_eq!(batch_bytes(&vec![1u64, 2, 3]), 24);
        assert_eq!(batch_bytes(&vec![(1u8, 2u32); 10]), 80);
        assert_eq!(batch_bytes(&vec!["a long borrowed string"; 4]), 64);
        assert_eq!(batch_bytes(&vec![(); 5]), 5);
        assert_eq!(batch_bytes::<String>(&vec![]), 0);
    }

    #[test]
    fn strings_and_byte_buffers_add_their_heap_bytes() {
        let s = vec!["x".repeat(1000), String::with_capacity(50)];
        assert_eq!(batch_bytes(&s), 2 * 24 + 1000 + 50);
        let b = vec![vec![0u8; 300]];
        assert_eq!(batch_bytes(&b), 24 + 300);
        let bs: Vec<Box<str>> = vec!["abc".into(), "de".into()];
        assert_eq!(batch_bytes(&bs), 2 * 16 + 5);
    }

    struct Blob(Vec<u32>);
    impl HeapSize for Blob {
        fn heap_bytes(&self) -> usize {
            self.0.capacity() * 4
        }
    }

    #[test]
    fn registered_types_report_heap_bytes() {
        let v = vec![Blob(Vec::with_capacity(10)), Blob(Vec::with_capacity(2))];
        assert_eq!(batch_bytes(&v), 2 * 24);
        register_heap_size::<Blob>();
        assert_eq!(batch_bytes(&v), 2 * 24 + 48);
    }
}
