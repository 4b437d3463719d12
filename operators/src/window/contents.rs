//! What a window holds for each key and how it becomes a result: `reduce`, `aggregate`
//! (incremental accumulators) or `process` (all elements).

use super::Window;
use crate::time::Timestamped;
use std::marker::PhantomData;

/// An incremental aggregation over a window's elements (Flink's `AggregateFunction`).
pub trait AggregateFunction<T>: Clone + Send + Sync + 'static {
    /// The accumulator.
    type Acc: Send + 'static;
    /// The window's result.
    type Out: Send + 'static;
    /// A fresh accumulator.
    fn create(&self) -> Self::Acc;
    /// Adds one element.
    fn add(&self, acc: &mut Self::Acc, value: T);
    /// Merges `other` into `acc` (session windows that merge).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result of an accumulator (the window may fire again with late elements).
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// The state of one window of one key.
pub(crate) trait Contents<K, T>: Send + 'static {
    /// Held per window and key.
    type Acc: Send + 'static;
    /// What a firing emits.
    type Out: Send + 'static;
    /// Adds `element` to `acc` (a new window when `None`).
    fn add(&mut self, acc: Option<Self::Acc>, element: Timestamped<T>) -> Self::Acc;
    /// Merges two accumulators (`a` is the earlier window).
    fn merge(&mut self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    /// The result for `key` and `window`.
    fn result(&mut self, key: &K, window: Window, acc: &Self::Acc) -> Self::Out;
}

/// `reduce(f)`: the window holds one value.
pub(crate) struct Reduce<F>(pub(crate) F);

impl<K, T, F> Contents<K, T> for Reduce<F>
where
    T: Clone + Send + 'static,
    F: FnMut(T, T) -> T + Send + 'static,
{
    type Acc = T;
    type Out = T;
    fn add(&mut self, acc: Option<T>, element: Timestamped<T>) -> T {
        match acc {
            None => element.value,
            Some(a) => (self.0)(a, element.value),
        }
    }
    fn merge(&mut self, a: T, b: T) -> T {
        (self.0)(a, b)
    }
    fn result(&mut self, _key: &K, _window: Window, acc: &T) -> T {
        acc.clone()
    }
}

/// `aggregate(f)`: the window holds an accumulator.
pub(crate) struct Aggregate<A, T>(pub(crate) A, pub(crate) PhantomData<fn(T)>);

impl<K, T, A> Contents<K, T> for Aggregate<A, T>
where
    T: Send + 'static,
    A: AggregateFunction<T>,
{
    type Acc = A::Acc;
    type Out = A::Out;
    fn add(&mut self, acc: Option<A::Acc>, element: Timestamped<T>) -> A::Acc {
        let mut acc = acc.unwrap_or_else(|| self.0.create());
        self.0.add(&mut acc, element.value);
        acc
    }
    fn merge(&mut self, mut a: A::Acc, b: A::Acc) -> A::Acc {
        self.0.merge(&mut a, b);
        a
    }
    fn result(&mut self, _key: &K, _window: Window, acc: &A::Acc) -> A::Out {
        self.0.result(acc)
    }
}

/// `process(f)`: the window holds every element, in arrival order.
pub(crate) struct Process<F>(pub(crate) F);

impl<K, T, R, F> Contents<K, T> for Process<F>
where
    T: Send + 'static,
    R: Send + 'static,
    F: FnMut(&K, Window, &[Timestamped<T>]) -> R + Send + 'static,
{
    type Acc = Vec<Timestamped<T>>;
    type Out = R;
    fn add(&mut self, acc: Option<Self::Acc>, element: Timestamped<T>) -> Self::Acc {
        let mut acc = acc.unwrap_or_default();
        acc.push(element);
        acc
    }
    fn merge(&mut self, mut a: Self::Acc, b: Self::Acc) -> Self::Acc {
        a.extend(b);
        a
    }
    fn result(&mut self, key: &K, window: Window, acc: &Self::Acc) -> R {
        (self.0)(key, window, acc)
    }
}
