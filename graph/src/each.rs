//! Batch consumption that never loses accepted elements when user code fails, and the
//! rendering of elements in errors and dead letters.
//!
//! A logic calling user code hands its batch to [`consume`] (user code takes elements by value)
//! or [`consume_ref`] (user code looks at each element first). Whatever the body did not take
//! stays in the input, also when user code panics: the panic goes on to the engine, which
//! applies the stage's supervision and feeds the rest of the batch back (to the same logic under
//! Resume, to a fresh one under Restart). Only the failing element is gone (to the dead-letter
//! sink under Resume/Restart). The happy path costs one `catch_unwind` per batch, never one per
//! element.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{OnceLock, RwLock};
use std::vec::Drain;

/// A panic raised by user code on an element the stage could keep: the engine reports the
/// element in the error and hands it to the dead-letter sink.
pub struct ElementPanic {
    /// The panic's message.
    pub message: String,
    /// The element user code was looking at.
    pub element: Box<dyn Any + Send>,
    /// Its rendering, when its type renders (see [`render_element`]).
    pub repr: Option<String>,
}

/// A panic raised by user code that took its element by value: the element is gone, its
/// rendering was taken just before the call (see [`call_rendered`]).
pub struct RenderedPanic {
    /// The panic's message.
    pub message: String,
    /// The rendering of the element user code was called with.
    pub repr: String,
}

/// The message of a panic payload (`&str` or `String`; anything else is "unknown panic").
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(e) = p.downcast_ref::<ElementPanic>() {
        return e.message.clone();
    }
    if let Some(e) = p.downcast_ref::<RenderedPanic>() {
        return e.message.clone();
    }
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Moves what is left of a drain into `rest` when dropped (also while unwinding).
struct Keep<'a, 'b, T> {
    it: Drain<'a, T>,
    rest: &'b mut Vec<T>,
}

impl<T> Drop for Keep<'_, '_, T> {
    fn drop(&mut self) {
        self.rest.extend(&mut self.it);
    }
}

/// Runs `body` over a drain of `input`. Elements `body` did not take stay in `input`, in order,
/// whether it returned early or user code in it panicked (the panic then continues).
pub fn consume<T, R>(input: &mut Vec<T>, body: impl FnOnce(&mut Drain<'_, T>) -> R) -> R {
    let mut rest = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut k = Keep {
            it: input.drain(..),
            rest: &mut rest,
        };
        body(&mut k.it)
    }));
    input.append(&mut rest);
    match r {
        Ok(r) => r,
        Err(p) => resume_unwind(p),
    }
}

/// Like [`consume`] for user code that looks at each element before it is taken: `body` reads
/// the front element with `as_slice()` and takes it with `next()` only after user code returned.
/// When user code panics on the front element, that element is removed and travels with the
/// panic as an [`ElementPanic`] (so it can be rendered and dead-lettered); the rest stays.
pub fn consume_ref<T: Send + 'static, R>(
    input: &mut Vec<T>,
    body: impl FnOnce(&mut Drain<'_, T>) -> R,
) -> R {
    let mut rest = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut k = Keep {
            it: input.drain(..),
            rest: &mut rest,
        };
        body(&mut k.it)
    }));
    match r {
        Ok(r) => {
            input.append(&mut rest);
            r
        }
        Err(p) => {
            if rest.is_empty() {
                resume_unwind(p)
            }
            let failed = rest.remove(0);
            input.append(&mut rest);
            resume_unwind(element_panic(p, failed))
        }
    }
}

/// Wraps a panic payload with the element user code panicked on.
pub fn element_panic<T: Send + 'static>(p: Box<dyn Any + Send>, x: T) -> Box<dyn Any + Send> {
    if p.is::<ElementPanic>() {
        return p;
    }
    let repr = render_element(&x);
    Box::new(ElementPanic {
        message: panic_message(&*p),
        element: Box::new(x),
        repr,
    })
}

/// Calls `f(x)` (user code taking its element by value) with `x` rendered just before the call,
/// so a panic in `f` names the element: it continues as a [`RenderedPanic`]. Costs one `Debug`
/// formatting per call; logics use it only under a supervision policy and when `T` renders
/// ([`renders`]), and call `f` directly otherwise (a panic then names the element's position).
pub fn call_rendered<T: 'static, R>(x: T, f: impl FnOnce(T) -> R) -> R {
    let repr = render_element(&x);
    match catch_unwind(AssertUnwindSafe(|| f(x))) {
        Ok(r) => r,
        Err(p) if p.is::<ElementPanic>() || p.is::<RenderedPanic>() => resume_unwind(p),
        Err(p) => match repr {
            Some(repr) => resume_unwind(Box::new(RenderedPanic {
                message: panic_message(&*p),
                repr,
            })),
            None => resume_unwind(p),
        },
    }
}

/// `Vec::retain` with a predicate that may panic: on a panic the kept elements before the failing
/// one are moved to `kept_to`, the failing element travels with the panic (an [`ElementPanic`])
/// and the elements after it stay in `input`. (It relies on `Vec::retain` keeping the unvisited
/// elements when the predicate panics, which the tests below check.)
pub fn retain_guarded<T: Send + 'static>(
    input: &mut Vec<T>,
    kept_to: &mut Vec<T>,
    mut pred: impl FnMut(&T) -> bool,
) {
    let n = input.len();
    let mut calls = 0usize;
    let r = catch_unwind(AssertUnwindSafe(|| {
        input.retain(|x| {
            calls += 1;
            pred(x)
        })
    }));
    if let Err(p) = r {
        // `retain` keeps the unvisited tail, the failing element first, after the kept ones.
        let kept = input.len().saturating_sub(n - (calls - 1).min(n));
        kept_to.extend(input.drain(..kept));
        if input.is_empty() {
            resume_unwind(p)
        }
        let failed = input.remove(0);
        resume_unwind(element_panic(p, failed));
    }
}

type Render = fn(&dyn Any) -> Option<String>;

/// Inserts the renderers of each scalar type, its `Option` and its `Vec`.
macro_rules! seed_known {
    ($m:expr, [$($t:ty),*]) => {
        $(
            $m.insert(TypeId::of::<$t>(), render_as::<$t> as Render);
            $m.insert(TypeId::of::<Option<$t>>(), render_as::<Option<$t>> as Render);
            $m.insert(TypeId::of::<Vec<$t>>(), render_as::<Vec<$t>> as Render);
        )*
    };
}

/// Inserts the renderers of every pair `(a, b)` of the two lists.
macro_rules! seed_pairs {
    ($m:expr, [$($a:ty),*], $bs:tt) => {
        $( seed_pairs!(@one $m, $a, $bs); )*
    };
    (@one $m:expr, $a:ty, [$($b:ty),*]) => {
        $( $m.insert(TypeId::of::<($a, $b)>(), render_as::<($a, $b)> as Render); )*
    };
}

/// Renderers by type: the standard scalars, strings, their options, vectors and common pairs,
/// plus what [`register_debug`] adds.
fn registry() -> &'static RwLock<HashMap<TypeId, Render>> {
    static R: OnceLock<RwLock<HashMap<TypeId, Render>>> = OnceLock::new();
    R.get_or_init(|| {
        let mut m: HashMap<TypeId, Render> = HashMap::new();
        crate::scalars::copy_scalars!(seed_known!(m,), String);
        crate::scalars::pair_lists!(seed_pairs!(m,), String);
        RwLock::new(m)
    })
}

fn render_as<T: Debug + 'static>(x: &dyn Any) -> Option<String> {
    x.downcast_ref::<T>().map(|v| format!("{v:?}"))
}

/// Makes elements of type `T` render with their `Debug` form in errors and dead letters
/// (standard scalars, strings and their pairs, vectors and options render without this).
pub fn register_debug<T: Debug + 'static>() {
    if let Ok(mut r) = registry().write() {
        r.insert(TypeId::of::<T>(), render_as::<T>);
    }
}

/// The `Debug` form of an element whose type is known to render, else `None` (only called on
/// failure paths, or per element under supervision: one map lookup).
pub fn render_any(x: &dyn Any) -> Option<String> {
    let f = registry().read().ok()?.get(&x.type_id()).copied()?;
    f(x)
}

/// Whether elements of type `T` render (a standard type or one registered with
/// [`register_debug`]), decided from the type alone.
pub fn renders<T: 'static>() -> bool {
    registry()
        .read()
        .is_ok_and(|r| r.contains_key(&TypeId::of::<T>()))
}

/// The `Debug` form of `x` when its type renders (see [`render_any`]).
pub fn render_element<T: 'static>(x: &T) -> Option<String> {
    render_any(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caught<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
        catch_unwind(AssertUnwindSafe(f))
    }

    #[test]
    fn consume_keeps_the_rest_after_a_panic_and_an_early_return() {
        let mut input: Vec<u32> = (0..6).collect();
        let mut out = Vec::new();
        let r = caught(|| {
            consume(&mut input, |it| {
                out.extend(it.map(|x| if x == 2 { panic!("two") } else { x }))
            })
        });
        assert_eq!(r.err().map(|p| panic_message(&*p)), Some("two".to_owned()));
        assert_eq!(out, vec![0, 1]);
        assert_eq!(input, vec![3, 4, 5]);
        let taken: Vec<u32> = consume(&mut input, |it| it.take(1).collect());
        assert_eq!((taken, input), (vec![3], vec![4, 5]));
    }

    #[test]
    fn consume_ref_hands_the_failing_element_over() {
        let mut input: Vec<u32> = (0..5).collect();
        let mut out = Vec::new();
        let r = caught(|| {
            consume_ref(&mut input, |it| {
                while let Some(x) = it.as_slice().first() {
                    assert!(*x != 3, "three");
                    out.extend(it.next());
                }
            })
        });
        let p = r.err().and_then(|p| p.downcast::<ElementPanic>().ok());
        let p = p.map(|p| {
            (
                p.message,
                p.repr,
                p.element.downcast::<u32>().ok().map(|b| *b),
            )
        });
        assert_eq!(p, Some(("three".to_owned(), Some("3".to_owned()), Some(3))));
        assert_eq!((out, input), (vec![0, 1, 2], vec![4]));
    }

    #[test]
    fn retain_guarded_splits_kept_failing_and_rest() {
        let mut input: Vec<u32> = (0..8).collect();
        let mut kept = Vec::new();
        let r = caught(|| {
            retain_guarded(&mut input, &mut kept, |x| {
                assert!(*x != 5, "five");
                x % 2 == 0
            })
        });
        let p = r.err().and_then(|p| p.downcast::<ElementPanic>().ok());
        assert_eq!(p.and_then(|p| p.repr), Some("5".to_owned()));
        assert_eq!((kept, input), (vec![0, 2, 4], vec![6, 7]));
    }

    #[test]
    fn call_rendered_names_the_element_a_panic_consumed() {
        assert_eq!(call_rendered(3u32, |x| x + 1), 4);
        let r = caught(|| call_rendered(7u32, |x: u32| -> u32 { panic!("seven {x}") }));
        let p = r.err().and_then(|p| p.downcast::<RenderedPanic>().ok());
        assert_eq!(
            p.map(|p| (p.message, p.repr)),
            Some(("seven 7".to_owned(), "7".to_owned()))
        );
        // A type that does not render: the panic goes on as it was.
        struct Opaque;
        let r = caught(|| call_rendered(Opaque, |_: Opaque| -> u32 { panic!("opaque") }));
        assert_eq!(
            r.err().map(|p| panic_message(&*p)),
            Some("opaque".to_owned())
        );
    }

    #[test]
    fn renders_is_decided_by_type() {
        #[derive(Debug)]
        struct Registered;
        struct Opaque;
        assert!(renders::<u64>());
        assert!(renders::<(String, f64)>());
        assert!(renders::<Vec<i32>>());
        assert!(!renders::<Opaque>());
        assert!(!renders::<Registered>());
        register_debug::<Registered>();
        assert!(renders::<Registered>());
        assert_eq!(render_element(&Registered), Some("Registered".to_owned()));
    }

    #[test]
    fn rendering_of_known_and_registered_types() {
        #[derive(Debug)]
        struct Point(i8);
        assert_eq!(render_element(&"x"), Some("\"x\"".to_owned()));
        assert_eq!(render_element(&(1u64, 2.5f64)), Some("(1, 2.5)".to_owned()));
        assert_eq!(Point(1).0, 1);
        assert_eq!(render_element(&Point(1)), None);
        register_debug::<Point>();
        assert_eq!(render_element(&Point(1)), Some("Point(1)".to_owned()));
    }
}
