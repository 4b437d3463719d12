//! Recovery of the element user code panicked on after taking it by value, for copy types.
//!
//! A logic that hands its elements to user code by value keeps a [`Shadow`] of its element
//! type and consumes its batches with [`consume_recovering`]. When the type is a copy type that
//! renders (the standard scalars, `()`, `&'static str`, their options and common pairs, or a
//! type given to [`register_copy`]), the batch is copied into the shadow before the call (one
//! `memcpy` a batch, no allocation once the shadow has grown), and after a panic the element
//! at the failing position is taken from the copy: the error names it and the dead-letter sink
//! gets it, as for user code that looks at its element by reference. Other types cost nothing.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{OnceLock, RwLock};
use std::vec::Drain;

use crate::each::{
    ElementPanic, RenderedPanic, consume, panic_message, register_debug, render_element, renders,
};

/// The typed copy functions of one copy type.
struct Copier<T> {
    snap: fn(&[T], &mut Vec<T>),
    boxed: fn(&T) -> Box<dyn Any + Send>,
}

impl<T> Clone for Copier<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Copier<T> {}

fn snap<T: Copy>(from: &[T], to: &mut Vec<T>) {
    to.clear();
    to.extend_from_slice(from);
}

fn boxed<T: Copy + Send + 'static>(x: &T) -> Box<dyn Any + Send> {
    Box::new(*x)
}

fn copier<T: Copy + Send + 'static>() -> Box<dyn Any + Send + Sync> {
    Box::new(Copier::<T> {
        snap: snap::<T>,
        boxed: boxed::<T>,
    })
}

/// Inserts the copiers of each type and its `Option`, then of every pair of the two lists.
macro_rules! seed_copies {
    ($m:expr, [$($t:ty),*]) => {
        $( $m.insert(TypeId::of::<$t>(), copier::<$t>());
           $m.insert(TypeId::of::<Option<$t>>(), copier::<Option<$t>>()); )*
    };
    (@pairs $m:expr, [$($a:ty),*], $bs:tt) => {
        $( seed_copies!(@one $m, $a, $bs); )*
    };
    (@one $m:expr, $a:ty, [$($b:ty),*]) => {
        $( $m.insert(TypeId::of::<($a, $b)>(), copier::<($a, $b)>()); )*
    };
}

/// Copiers by type: the rendering copy types plus what [`register_copy`] adds.
fn copies() -> &'static RwLock<HashMap<TypeId, Box<dyn Any + Send + Sync>>> {
    static C: OnceLock<RwLock<HashMap<TypeId, Box<dyn Any + Send + Sync>>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut m: HashMap<TypeId, Box<dyn Any + Send + Sync>> = HashMap::new();
        crate::scalars::copy_scalars!(seed_copies!(m,));
        crate::scalars::pair_lists!(seed_copies!(@pairs m,));
        RwLock::new(m)
    })
}

/// Makes elements of the copy type `T` render in errors and dead letters, and be recovered
/// after a panic in user code that took them by value (for stages materialized after the call).
pub fn register_copy<T: Copy + Debug + Send + 'static>() {
    register_debug::<T>();
    if let Ok(mut c) = copies().write() {
        c.insert(TypeId::of::<T>(), copier::<T>());
    }
}

/// A logic's copy of its current batch, kept when `T` is a copy type that renders.
pub struct Shadow<T> {
    copier: Option<Copier<T>>,
    buf: Vec<T>,
}

impl<T: 'static> Default for Shadow<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> Shadow<T> {
    /// A shadow for `T`, decided once from the type (copy types that render keep copies).
    pub fn new() -> Self {
        let copier = renders::<T>()
            .then(|| {
                let c = copies().read().ok()?;
                c.get(&TypeId::of::<T>())?
                    .downcast_ref::<Copier<T>>()
                    .copied()
            })
            .flatten();
        Self {
            copier,
            buf: Vec::new(),
        }
    }

    /// Whether a panic on an element taken by value names and dead-letters it.
    pub fn recovers(&self) -> bool {
        self.copier.is_some()
    }
}

/// [`consume`] that, when `shadow` recovers `T`, turns a panic of user code into an
/// [`ElementPanic`] carrying the element it was called with (the last one `body` took).
pub fn consume_recovering<T: 'static, R>(
    input: &mut Vec<T>,
    shadow: &mut Shadow<T>,
    body: impl FnOnce(&mut Drain<'_, T>) -> R,
) -> R {
    let Some(c) = shadow.copier else {
        return consume(input, body);
    };
    (c.snap)(input, &mut shadow.buf);
    let n = input.len();
    match catch_unwind(AssertUnwindSafe(|| consume(input, body))) {
        Ok(r) => r,
        Err(p) if p.is::<ElementPanic>() || p.is::<RenderedPanic>() => resume_unwind(p),
        Err(p) => {
            // `consume` put back what `body` did not take: the failing element came just before.
            let failed = (n - input.len()).checked_sub(1);
            match failed.and_then(|i| shadow.buf.get(i)) {
                Some(x) => resume_unwind(Box::new(ElementPanic {
                    message: panic_message(&*p),
                    repr: render_element(x),
                    element: (c.boxed)(x),
                })),
                None => resume_unwind(p),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caught<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
        catch_unwind(AssertUnwindSafe(f))
    }

    fn failure(p: Box<dyn Any + Send>) -> Option<(String, Option<String>)> {
        p.downcast::<ElementPanic>()
            .ok()
            .map(|e| (e.message, e.repr))
    }

    #[test]
    fn a_copy_element_travels_with_the_panic_and_the_rest_stays() {
        let mut input: Vec<i32> = (0..6).collect();
        let mut shadow = Shadow::new();
        assert!(shadow.recovers());
        let mut out = Vec::new();
        let r = caught(|| {
            consume_recovering(&mut input, &mut shadow, |it| {
                out.extend(it.map(|x| if x == 2 { panic!("two") } else { x * 10 }))
            })
        });
        let p = r.err().and_then(|p| p.downcast::<ElementPanic>().ok());
        let p = p.map(|p| {
            (
                p.message,
                p.repr,
                p.element.downcast::<i32>().ok().map(|b| *b),
            )
        });
        assert_eq!(p, Some(("two".to_owned(), Some("2".to_owned()), Some(2))));
        assert_eq!((out, input), (vec![0, 10], vec![3, 4, 5]));
        // The next batch is copied afresh: the failing position is found in it.
        let mut next = vec![7, 8, 9];
        let r = caught(|| {
            consume_recovering(&mut next, &mut shadow, |it| {
                it.map(|x| if x == 9 { panic!("nine") } else { x })
                    .collect::<Vec<_>>()
            })
        });
        assert_eq!(
            r.err().and_then(failure),
            Some(("nine".to_owned(), Some("9".to_owned())))
        );
        assert_eq!(next, Vec::<i32>::new());
    }

    #[test]
    fn owned_and_unregistered_types_panic_as_they_were() {
        let mut input = vec!["a".to_owned(), "b".to_owned()];
        let mut shadow = Shadow::new();
        assert!(!shadow.recovers());
        let r = caught(|| {
            consume_recovering(&mut input, &mut shadow, |it| {
                it.map(|s| if s == "b" { panic!("bee") } else { s })
                    .collect::<Vec<_>>()
            })
        });
        let p = r.err();
        assert_eq!(p.as_deref().map(panic_message), Some("bee".to_owned()));
        assert!(p.is_some_and(|p| !p.is::<ElementPanic>()));

        #[derive(Clone, Copy, Debug, PartialEq)]
        struct Celsius(i16);
        assert!(!Shadow::<Celsius>::new().recovers());
        register_copy::<Celsius>();
        let mut shadow = Shadow::new();
        assert!(shadow.recovers());
        let mut input = vec![Celsius(1), Celsius(-300), Celsius(3)];
        let r = caught(|| {
            consume_recovering(&mut input, &mut shadow, |it| {
                it.map(|c| {
                    Celsius(
                        c.0.checked_add(1)
                            .filter(|t| *t > -273)
                            .expect("below absolute zero")
                            - 1,
                    )
                })
                .collect::<Vec<_>>()
            })
        });
        assert_eq!(
            r.err().and_then(failure),
            Some((
                "below absolute zero".to_owned(),
                Some("Celsius(-300)".to_owned())
            ))
        );
        assert_eq!(input, vec![Celsius(3)]);
    }

    #[test]
    fn an_early_return_keeps_the_rest_untouched() {
        let mut input: Vec<u64> = (0..5).collect();
        let mut shadow = Shadow::new();
        let taken: Vec<u64> =
            consume_recovering(&mut input, &mut shadow, |it| it.take(2).collect());
        assert_eq!((taken, input), (vec![0, 1], vec![2, 3, 4]));
    }
}
