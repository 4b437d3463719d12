//! Control alignment at an input port and forwarding through a stage's control hub.

use super::*;
use crate::channel::channel;
use crate::control::ControlHub;
use std::task::Waker;
use weir_graph::{EdgeKind, RouterFactory, TypedRouterFactory};

fn data(v: Vec<u32>) -> Msg {
    Msg::Data(Box::new(v))
}

fn marker(id: u64) -> Msg {
    Msg::Control(Control::marker(id))
}

/// What a poll returned, in a comparable form.
#[derive(Debug, PartialEq)]
enum Got {
    Rows(Vec<u32>),
    Ctl(Control),
    End,
    Pending,
}

fn got(p: Poll<InMsg>) -> Got {
    match p {
        Poll::Ready(InMsg::Data(b)) => match b.into_any().downcast::<Vec<u32>>() {
            Ok(v) => Got::Rows(*v),
            Err(_) => panic!("not u32 rows"),
        },
        Poll::Ready(InMsg::Control(c)) => Got::Ctl(c),
        Poll::Ready(InMsg::End) => Got::End,
        Poll::Ready(InMsg::Error(e)) => panic!("error {e}"),
        Poll::Pending => Got::Pending,
    }
}

#[test]
fn a_channel_that_delivered_a_control_is_not_read_until_the_others_deliver_it() {
    // The channel runs on shuttle's primitives in unit tests.
    shuttle::check_random(
        || {
            let (tx0, rx0) = channel(100, usize::MAX);
            let (tx1, rx1) = channel(100, usize::MAX);
            let mut input = ChannelInput::new(vec![rx0, rx1], Arc::from("s#0"));
            let mut cx = Context::from_waker(Waker::noop());
            tx0.push(data(vec![1])).unwrap();
            tx0.push(marker(1)).unwrap();
            tx0.push(data(vec![3])).unwrap();
            tx1.push(data(vec![2])).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Rows(vec![1]));
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Rows(vec![2]));
            // Channel 0 waits behind its marker: its 3 is not read.
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Pending);
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Pending);
            tx1.push(data(vec![4])).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Rows(vec![4]));
            tx1.push(marker(1)).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Ctl(Control::marker(1)));
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Rows(vec![3]));
            tx0.push(Msg::End).unwrap();
            tx1.push(Msg::End).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::End);
        },
        1,
    );
}

#[test]
fn a_channel_that_ends_releases_the_control_the_others_wait_with() {
    // The channel runs on shuttle's primitives in unit tests.
    shuttle::check_random(
        || {
            let (tx0, rx0) = channel(100, usize::MAX);
            let (tx1, rx1) = channel(100, usize::MAX);
            let mut input = ChannelInput::new(vec![rx0, rx1], Arc::from("s#0"));
            let mut cx = Context::from_waker(Waker::noop());
            tx0.push(marker(2)).unwrap();
            tx0.push(data(vec![5])).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Pending);
            tx1.push(Msg::End).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Ctl(Control::marker(2)));
            assert_eq!(got(input.poll_recv(&mut cx)), Got::Rows(vec![5]));
            tx0.push(Msg::End).unwrap();
            assert_eq!(got(input.poll_recv(&mut cx)), Got::End);
        },
        1,
    );
}

#[test]
fn a_hub_forwards_a_control_once_after_the_rows_accepted_before_it() {
    // The channel runs on shuttle's primitives in unit tests.
    shuttle::check_random(
        || {
            let (tx_out, rx_out) = channel(100, usize::MAX);
            let router = TypedRouterFactory::<u32>::plain()
                .make(EdgeKind::Forward, 1)
                .unwrap();
            let out = RoutedOutput::new(router, vec![tx_out], 100, Arc::default());
            let out = Arc::new(std::sync::Mutex::new(out));
            let hub = Arc::new(ControlHub::new(
                2,
                vec![Arc::clone(&out)],
                None,
                Arc::from("m"),
            ));
            let (tx0, rx0) = channel(100, usize::MAX);
            let (tx1, rx1) = channel(100, usize::MAX);
            let mut in0 = ChannelInput::new(vec![rx0], Arc::from("m#0"))
                .forwarding_to(Arc::clone(&hub) as Arc<dyn ControlSink>, 0);
            let mut in1 = ChannelInput::new(vec![rx1], Arc::from("m#0"))
                .forwarding_to(Arc::clone(&hub) as Arc<dyn ControlSink>, 1);
            let mut shared = crate::control::SharedOutput(Arc::clone(&out), None, None);
            let mut cx = Context::from_waker(Waker::noop());
            // The stage accepted rows (below the batch size: not sent yet) before the controls came.
            shared.accept(&mut vec![7u32, 8]);
            tx0.push(marker(1)).unwrap();
            tx0.push(data(vec![9])).unwrap();
            // The control is consumed by the port (never seen by the stage); rows behind it flow on.
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Rows(vec![9]));
            let rx_out = ChannelInput::new(vec![rx_out], Arc::from("down#1"));
            let mut rx_out = rx_out;
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Pending);
            tx1.push(marker(1)).unwrap();
            assert_eq!(got(in1.poll_recv(&mut cx)), Got::Pending);
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Rows(vec![7, 8]));
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Ctl(Control::marker(1)));
            // Once port 1 is gone, port 0 aligns alone.
            drop(in1);
            tx0.push(marker(2)).unwrap();
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Pending);
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Ctl(Control::marker(2)));
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Pending);
        },
        1,
    );
}

#[test]
fn a_hub_blocks_a_port_that_delivered_a_barrier_until_every_port_did() {
    shuttle::check_random(
        || {
            let (tx_out, rx_out) = channel(100, usize::MAX);
            let router = TypedRouterFactory::<u32>::plain()
                .make(EdgeKind::Forward, 1)
                .unwrap();
            let out = RoutedOutput::new(router, vec![tx_out], 1, Arc::default());
            let out = Arc::new(std::sync::Mutex::new(out));
            let hub = Arc::new(ControlHub::new(
                2,
                vec![Arc::clone(&out)],
                None,
                Arc::from("m"),
            ));
            let (tx0, rx0) = channel(100, usize::MAX);
            let (tx1, rx1) = channel(100, usize::MAX);
            let mut in0 = ChannelInput::new(vec![rx0], Arc::from("m#0"))
                .forwarding_to(Arc::clone(&hub) as Arc<dyn ControlSink>, 0);
            let mut in1 = ChannelInput::new(vec![rx1], Arc::from("m#0"))
                .forwarding_to(Arc::clone(&hub) as Arc<dyn ControlSink>, 1);
            let mut shared = crate::control::SharedOutput(Arc::clone(&out), None, None);
            let mut rx_out = ChannelInput::new(vec![rx_out], Arc::from("down#1"));
            let mut cx = Context::from_waker(Waker::noop());
            tx0.push(Msg::Control(Control::barrier(1))).unwrap();
            tx0.push(data(vec![9])).unwrap();
            tx1.push(data(vec![1])).unwrap();
            tx1.push(Msg::Control(Control::barrier(1))).unwrap();
            tx1.push(data(vec![2])).unwrap();
            // Port 0 delivered the barrier: the row behind it waits.
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Pending);
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Pending);
            // Port 1's row ahead of its barrier passes; the stage hands it over.
            assert_eq!(got(in1.poll_recv(&mut cx)), Got::Rows(vec![1]));
            shared.accept(&mut vec![1u32]);
            // Port 1's barrier aligns: it goes out once, after the row, and both ports read on.
            assert_eq!(got(in1.poll_recv(&mut cx)), Got::Rows(vec![2]));
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Rows(vec![9]));
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Rows(vec![1]));
            assert_eq!(
                got(rx_out.poll_recv(&mut cx)),
                Got::Ctl(Control::barrier(1))
            );
            assert_eq!(got(rx_out.poll_recv(&mut cx)), Got::Pending);
            // A port that ends while the other one is blocked releases the barrier.
            tx0.push(Msg::Control(Control::barrier(2))).unwrap();
            tx0.push(data(vec![10])).unwrap();
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Pending);
            tx1.push(Msg::End).unwrap();
            assert_eq!(got(in1.poll_recv(&mut cx)), Got::End);
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Rows(vec![10]));
            assert_eq!(
                got(rx_out.poll_recv(&mut cx)),
                Got::Ctl(Control::barrier(2))
            );
        },
        1,
    );
}

#[test]
fn a_port_that_fails_while_another_is_blocked_releases_the_barrier() {
    shuttle::check_random(
        || {
            let (tx_out, rx_out) = channel(100, usize::MAX);
            let router = TypedRouterFactory::<u32>::plain()
                .make(EdgeKind::Forward, 1)
                .unwrap();
            let out = RoutedOutput::new(router, vec![tx_out], 1, Arc::default());
            let out = Arc::new(std::sync::Mutex::new(out));
            let hub = Arc::new(ControlHub::new(
                2,
                vec![Arc::clone(&out)],
                None,
                Arc::from("m"),
            ));
            let (tx0, rx0) = channel(100, usize::MAX);
            let (tx1, rx1) = channel(100, usize::MAX);
            let mut in0 = ChannelInput::new(vec![rx0], Arc::from("m#0"))
                .forwarding_to(Arc::clone(&hub) as Arc<dyn ControlSink>, 0);
            let mut in1 = ChannelInput::new(vec![rx1], Arc::from("m#0"))
                .forwarding_to(Arc::clone(&hub) as Arc<dyn ControlSink>, 1);
            let mut rx_out = ChannelInput::new(vec![rx_out], Arc::from("down#1"));
            let mut cx = Context::from_waker(Waker::noop());
            tx0.push(Msg::Control(Control::barrier(1))).unwrap();
            tx0.push(data(vec![3])).unwrap();
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Pending);
            tx1.push(Msg::Error(StageError::internal("boom"))).unwrap();
            assert!(matches!(
                in1.poll_recv(&mut cx),
                Poll::Ready(InMsg::Error(_))
            ));
            // The failed port no longer holds the barrier back; the blocked one reads on.
            assert_eq!(
                got(rx_out.poll_recv(&mut cx)),
                Got::Ctl(Control::barrier(1))
            );
            assert_eq!(got(in0.poll_recv(&mut cx)), Got::Rows(vec![3]));
        },
        1,
    );
}
