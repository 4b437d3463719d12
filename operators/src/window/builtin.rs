//! Built-in window aggregates over numbers (`sum`, `count`, `min`, `max`, `mean`): no user
//! code per element, for Rust and for Python (whose values become [`Num`] once, when keyed).

use super::AggregateFunction;

/// An element that carries the number a built-in aggregate uses.
pub trait Numeric: Send + 'static {
    /// The element's number.
    fn num(&self) -> Num;
}

impl Numeric for Num {
    fn num(&self) -> Num {
        *self
    }
}

/// A number summed, compared or counted in Rust.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Num {
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
}

impl Num {
    /// The number as a float.
    #[inline]
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The sum (ints saturate; mixed sums are floats).
    #[inline]
    fn plus(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a.saturating_add(b)),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// Whether `self < other` (ints exactly, mixed as floats).
    #[inline]
    fn lt(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a < b,
            (a, b) => a.as_f64() < b.as_f64(),
        }
    }
}

/// A built-in window aggregate over numbers (`count` needs none), run without user code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// The sum of the values.
    Sum,
    /// How many elements.
    Count,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The mean of the values.
    Mean,
}

impl<T: Numeric> AggregateFunction<T> for Builtin {
    /// The running result (the sum for `mean`) and the number of elements.
    type Acc = (Option<Num>, u64);
    type Out = Num;
    fn create(&self) -> Self::Acc {
        (None, 0)
    }
    #[inline]
    fn add(&self, acc: &mut Self::Acc, value: T) {
        // One element: no generic merge of two accumulators (ints add without a float check).
        let x = if *self == Builtin::Count {
            Num::Int(1)
        } else {
            value.num()
        };
        acc.0 = Some(match acc.0 {
            None => x,
            Some(a) => self.combine(a, x),
        });
        acc.1 = acc.1.saturating_add(1);
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        Self::merge_acc(*self, acc, other);
    }
    fn result(&self, acc: &Self::Acc) -> Num {
        Self::result_of(*self, acc)
    }
}

impl Builtin {
    /// The running result of `a` and then `b`.
    #[inline]
    fn combine(self, a: Num, b: Num) -> Num {
        match self {
            Builtin::Sum | Builtin::Count | Builtin::Mean => a.plus(b),
            Builtin::Min if b.lt(a) => b,
            Builtin::Max if a.lt(b) => b,
            Builtin::Min | Builtin::Max => a,
        }
    }
    fn merge_acc(self, acc: &mut (Option<Num>, u64), other: (Option<Num>, u64)) {
        let value = match (acc.0, other.0) {
            (None, o) | (o, None) => o,
            (Some(a), Some(b)) => Some(self.combine(a, b)),
        };
        *acc = (value, acc.1.saturating_add(other.1));
    }
    fn result_of(self, acc: &(Option<Num>, u64)) -> Num {
        let value = acc.0.unwrap_or(Num::Int(0));
        match self {
            Builtin::Mean => Num::Float(value.as_f64() / acc.1.max(1) as f64),
            _ => value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: Builtin, xs: &[Num]) -> Num {
        let mut acc = AggregateFunction::<Num>::create(&b);
        for x in xs {
            b.add(&mut acc, *x);
        }
        AggregateFunction::<Num>::result(&b, &acc)
    }

    #[test]
    fn builtins_compute_over_ints_floats_and_mixes() {
        let ints = [Num::Int(3), Num::Int(-1), Num::Int(5)];
        assert_eq!(run(Builtin::Sum, &ints), Num::Int(7));
        assert_eq!(run(Builtin::Count, &ints), Num::Int(3));
        assert_eq!(run(Builtin::Min, &ints), Num::Int(-1));
        assert_eq!(run(Builtin::Max, &ints), Num::Int(5));
        assert_eq!(
            run(Builtin::Mean, &[Num::Int(1), Num::Int(2)]),
            Num::Float(1.5)
        );
        assert_eq!(
            run(Builtin::Sum, &[Num::Int(1), Num::Float(0.5)]),
            Num::Float(1.5)
        );
        assert_eq!(run(Builtin::Sum, &[]), Num::Int(0));
        let mut a = AggregateFunction::<Num>::create(&Builtin::Max);
        Builtin::Max.add(&mut a, Num::Int(2));
        let mut b = AggregateFunction::<Num>::create(&Builtin::Max);
        Builtin::Max.add(&mut b, Num::Float(7.5));
        AggregateFunction::<Num>::merge(&Builtin::Max, &mut a, b);
        assert_eq!(
            AggregateFunction::<Num>::result(&Builtin::Max, &a),
            Num::Float(7.5)
        );
    }
}
