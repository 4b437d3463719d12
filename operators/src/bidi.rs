//! [`BidiFlow`] constructors that need operators: [`BidiCtors::from_functions`].

use crate::simple::map;
use weir_graph::BidiFlow;

/// Bidi constructors, called as `BidiFlow::from_functions(f, g)`.
pub trait BidiCtors<I1, O1, I2, O2>: Sized {
    /// A bidi whose top maps each element with `f` and whose bottom maps with `g`.
    /// Emits when: an element arrives on either side (its image).
    /// Backpressures when: that side's downstream backpressures.
    /// Completes when: each side's upstream completes.
    /// Cancels when: each side's downstream cancels.
    /// Fails when: that side's upstream fails.
    fn from_functions(
        f: impl FnMut(I1) -> O1 + Clone + Send + Sync + 'static,
        g: impl FnMut(I2) -> O2 + Clone + Send + Sync + 'static,
    ) -> Self;
}

impl<I1, O1, I2, O2> BidiCtors<I1, O1, I2, O2> for BidiFlow<I1, O1, I2, O2>
where
    I1: Send + 'static,
    O1: Send + 'static,
    I2: Send + 'static,
    O2: Send + 'static,
{
    fn from_functions(
        f: impl FnMut(I1) -> O1 + Clone + Send + Sync + 'static,
        g: impl FnMut(I2) -> O2 + Clone + Send + Sync + 'static,
    ) -> Self {
        BidiFlow::from_flows(map(f), map(g))
    }
}
