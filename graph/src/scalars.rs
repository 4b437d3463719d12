//! The standard types whose elements render and recover without registration: one list, used
//! by the renderers (`each.rs`) and the copiers (`recover.rs`).

/// Calls `$mac!(prefix [types])` with the standard copy scalars, plus `extra` types if given.
macro_rules! copy_scalars {
    ($mac:ident!($($pre:tt)*) $(, $extra:ty)*) => {
        $mac!($($pre)* [
            i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, bool,
            char, (), &'static str $(, $extra)*
        ])
    };
}

/// Calls `$mac!(prefix [firsts], [seconds])` with the common pairs' component lists, plus
/// `extra` types in both if given.
macro_rules! pair_lists {
    ($mac:ident!($($pre:tt)*) $(, $extra:ty)*) => {
        $mac!($($pre)*
            [i32, i64, u32, u64, usize, &'static str $(, $extra)*],
            [i32, i64, u32, u64, usize, f64, &'static str $(, $extra)*]
        )
    };
}

pub(crate) use {copy_scalars, pair_lists};
