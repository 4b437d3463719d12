//! Stateless element-wise flows: `map`, `filter`, `filter_map`, `flat_map`.
//!
//! `map`, `filter_map` and `flat_map` hand their element to user code by value. When its type
//! is a copy type that renders (scalars, their options and pairs, `&'static str`, or
//! [`weir_graph::register_copy`]), a panic names the element and dead-letters it, at the cost
//! of one copy of each batch ([`weir_graph::consume_recovering`]). An owned element (a
//! `String`, a struct) is gone after the panic: under a supervision policy, and when its type
//! renders ([`weir_graph::render_element`]), each element is rendered just before the call
//! ([`call_rendered`]) and the error and dead letter name it; otherwise (the default, and the
//! hot path) nothing is done per element and the error names the element's position in the
//! input. `filter` sees its element by reference and always names it.
//!
//! All four take the run's default parallelism (`Materializer::with_parallelism`) unless they
//! set their own: each subtask calls its own clone of the function on its share of the input.

use weir_graph::{
    Flow, FlowLogic, Shadow, StageCx, StageError, call_rendered, consume_recovering, renders,
    retain_guarded,
};

/// Whether a stage calling user code with elements of type `I` by value renders each element
/// before the call: only under a supervision policy, when `I` renders and is not recovered
/// from the batch's copy anyway (checked once a batch).
fn render_before_call<I: 'static>(scx: &StageCx<'_>, shadow: &Shadow<I>) -> bool {
    scx.supervised() && !shadow.recovers() && renders::<I>()
}

struct MapLogic<F, I> {
    f: F,
    shadow: Shadow<I>,
}

impl<I, O, F> FlowLogic<I, O> for MapLogic<F, I>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnMut(I) -> O + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = &mut self.f;
        if render_before_call(scx, &self.shadow) {
            consume_recovering(input, &mut self.shadow, |it| {
                out.extend(it.map(|x| call_rendered(x, &mut *f)))
            });
        } else {
            consume_recovering(input, &mut self.shadow, |it| out.extend(it.map(f)));
        }
        Ok(())
    }
}

/// Flow form of [`SimpleOps::map`](super::SimpleOps::map).
pub fn map<I, O, F>(f: F) -> Flow<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnMut(I) -> O + Clone + Send + Sync + 'static,
{
    Flow::from_logic("map", move |_| {
        Ok((
            MapLogic {
                f: f.clone(),
                shadow: Shadow::new(),
            },
            (),
        ))
    })
    .parallel_by_default()
}

struct FilterLogic<F> {
    f: F,
}

impl<T, F> FlowLogic<T, T> for FilterLogic<F>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // In place, then hand the buffer over: about twice as fast as `extend(drain().filter())`.
        retain_guarded(input, out, &mut self.f);
        super::pass(input, out);
        Ok(())
    }
}

/// Flow form of [`SimpleOps::filter`](super::SimpleOps::filter).
pub fn filter<T, F>(f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
{
    Flow::from_logic("filter", move |_| Ok((FilterLogic { f: f.clone() }, ())))
        .parallel_by_default()
}

struct FilterMapLogic<F, I> {
    f: F,
    shadow: Shadow<I>,
}

impl<I, O, F> FlowLogic<I, O> for FilterMapLogic<F, I>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnMut(I) -> Option<O> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = &mut self.f;
        if render_before_call(scx, &self.shadow) {
            consume_recovering(input, &mut self.shadow, |it| {
                out.extend(it.filter_map(|x| call_rendered(x, &mut *f)));
            });
        } else {
            consume_recovering(input, &mut self.shadow, |it| out.extend(it.filter_map(f)));
        }
        Ok(())
    }
}

/// Flow form of [`SimpleOps::filter_map`](super::SimpleOps::filter_map).
pub fn filter_map<I, O, F>(f: F) -> Flow<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnMut(I) -> Option<O> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("filter_map", move |_| {
        Ok((
            FilterMapLogic {
                f: f.clone(),
                shadow: Shadow::new(),
            },
            (),
        ))
    })
    .parallel_by_default()
}

struct FlatMapLogic<F, I> {
    f: F,
    shadow: Shadow<I>,
}

impl<I, O, It, F> FlowLogic<I, O> for FlatMapLogic<F, I>
where
    I: Send + 'static,
    O: Send + 'static,
    It: IntoIterator<Item = O>,
    F: FnMut(I) -> It + Send + 'static,
{
    fn expands(&self) -> bool {
        true
    }

    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let render = render_before_call(scx, &self.shadow);
        let f = &mut self.f;
        consume_recovering(input, &mut self.shadow, |it| {
            for x in it {
                if render {
                    out.extend(call_rendered(x, &mut *f));
                } else {
                    out.extend(f(x));
                }
            }
        });
        Ok(())
    }
}

/// Flow form of [`SimpleOps::flat_map`](super::SimpleOps::flat_map).
pub fn flat_map<I, O, It, F>(f: F) -> Flow<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
    It: IntoIterator<Item = O>,
    F: FnMut(I) -> It + Clone + Send + Sync + 'static,
{
    Flow::from_logic("flat_map", move |_| {
        Ok((
            FlatMapLogic {
                f: f.clone(),
                shadow: Shadow::new(),
            },
            (),
        ))
    })
    .parallel_by_default()
}

/// Flow form of [`SimpleOps::map_concat`](super::SimpleOps::map_concat) (alias of [`flat_map()`]).
pub fn map_concat<I, O, It, F>(f: F) -> Flow<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
    It: IntoIterator<Item = O>,
    F: FnMut(I) -> It + Clone + Send + Sync + 'static,
{
    flat_map(f).named("map_concat")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{batches, run};

    #[test]
    fn map_filter_filter_map() {
        let v: Vec<i64> = (0..100).collect();
        assert_eq!(
            run(&map(|x: i64| x * 2), batches(&v, 7)).ok(),
            Some(v.iter().map(|x| x * 2).collect())
        );
        assert_eq!(
            run(&filter(|x: &i64| x % 3 == 0), batches(&v, 5)).ok(),
            Some(v.iter().copied().filter(|x| x % 3 == 0).collect())
        );
        let fm = filter_map(|x: i64| (x % 2 == 0).then_some(x + 1));
        assert_eq!(
            run(&fm, batches(&v, 9)).ok(),
            Some(v.iter().filter(|x| *x % 2 == 0).map(|x| x + 1).collect())
        );
    }

    #[test]
    fn flat_map_expands_and_state_is_per_instance() {
        let f = flat_map(|x: u32| 0..x);
        assert_eq!(
            run(&f, vec![vec![0, 1, 2], vec![3]]).ok(),
            Some(vec![0, 0, 1, 0, 1, 2])
        );
        let mut seen = 0;
        let counting = map(move |x: u32| {
            seen += 1;
            x + seen
        });
        // Each materialization clones the closure: state starts fresh.
        assert_eq!(run(&counting, vec![vec![10, 10]]).ok(), Some(vec![11, 12]));
        assert_eq!(run(&counting, vec![vec![10]]).ok(), Some(vec![11]));
        let mc = map_concat(|s: &'static str| s.chars().collect::<Vec<_>>());
        assert_eq!(
            run(&mc, vec![vec!["ab", "", "c"]]).ok(),
            Some(vec!['a', 'b', 'c'])
        );
    }
}
