//! Proxy refs ([`ActorRef::proxy`]): what is told, asked or sent by an actor reaches the inbox
//! in order with its reply address; a reply through the [`Replier`] reaches the asker or the
//! sending actor; `tell` waits while the proxy is full; the inbox sees the last ref go; a
//! closed inbox refuses tells; [`ActorRef::send_ask`] hands back the pending reply;
//! [`ActorRef::forward`] passes a message on with its reply target.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::SystemClock;
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{
    Actor, ActorRef, AskError, Ctx, Inbox, Incoming, MailboxConfig, Props, TellError,
};
use weir_operators::prelude::*;

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

fn proxy<M: Send + 'static>(capacity: usize) -> (ActorRef<M>, Inbox<M>) {
    ActorRef::proxy(
        "remote://n2/svc/x",
        &MailboxConfig::bounded(capacity),
        Arc::new(SystemClock::default()),
        None,
    )
    .expect("proxy")
}

#[tokio::test]
async fn tells_reach_the_inbox_in_order_and_the_inbox_ends_with_the_last_ref() {
    let (r, mut inbox) = proxy::<u32>(16);
    assert_eq!(r.path(), "remote://n2/svc/x");
    for i in 0..10 {
        r.tell(i).await.expect("told");
    }
    let r2 = r.clone();
    drop(r);
    r2.try_tell(10).expect("told");
    let mut got = Vec::new();
    assert_eq!(timed(inbox.recv(&mut got, 4)).await, 4);
    assert_eq!(timed(inbox.recv(&mut got, 100)).await, 7);
    let msgs: Vec<u32> = got.iter().map(|m| m.msg).collect();
    assert_eq!(msgs, (0..=10).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.reply.is_none()));
    assert!(inbox.has_refs());
    drop(r2);
    assert_eq!(timed(inbox.recv(&mut got, 100)).await, 0);
    assert!(!inbox.has_refs());
}

#[tokio::test]
async fn tell_waits_while_the_proxy_is_full_and_try_tell_drops() {
    let (r, mut inbox) = proxy::<u32>(2);
    r.tell(0).await.expect("told");
    r.tell(1).await.expect("told");
    assert_eq!(
        r.try_tell(2),
        Err(TellError::Full {
            actor: "remote://n2/svc/x".into()
        })
    );
    let r2 = r.clone();
    let blocked = tokio::spawn(async move { r2.tell(3).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!blocked.is_finished(), "tell waits while the proxy is full");
    let mut got = Vec::new();
    timed(inbox.recv(&mut got, 1)).await;
    timed(blocked)
        .await
        .expect("joins")
        .expect("told once room freed");
    while got.len() < 3 {
        timed(inbox.recv(&mut got, 10)).await;
    }
    let msgs: Vec<u32> = got.iter().map(|m| m.msg).collect();
    assert_eq!(msgs, vec![0, 1, 3]);
}

#[tokio::test]
async fn an_ask_through_the_proxy_is_answered_by_its_replier() {
    let (r, mut inbox) = proxy::<String>(4);
    let answer = tokio::spawn(async move {
        let mut got: Vec<Incoming<String>> = Vec::new();
        inbox.recv(&mut got, 1).await;
        let m = got.pop().expect("one");
        let reply = m.reply.expect("an ask has a replier");
        assert!(reply.is_ask());
        assert_eq!(reply.sender_path(), None);
        reply.send(Box::new(m.msg.len())).expect("delivered");
        inbox
    });
    let n: usize = timed(r.ask("four".to_owned(), Duration::from_secs(5)))
        .await
        .expect("answered");
    assert_eq!(n, 4);
    let mut inbox = answer.await.expect("joins");
    // An ask whose replier is dropped gets NoReply at once, not its timeout.
    let asked = tokio::spawn({
        let r = r.clone();
        async move { r.ask::<usize>("x".into(), Duration::from_secs(60)).await }
    });
    let mut got = Vec::new();
    timed(inbox.recv(&mut got, 1)).await;
    drop(got);
    assert_eq!(
        timed(asked).await.expect("joins"),
        Err(AskError::NoReply {
            actor: "remote://n2/svc/x".into()
        })
    );
}

/// Tells the proxy it is given (once) and emits what comes back.
struct Caller {
    to: ActorRef<u64>,
}

enum CallerMsg {
    Call(u64),
    Answer(u64),
}

impl Actor for Caller {
    type Msg = CallerMsg;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CallerMsg) -> Result<(), StageError> {
        match msg {
            CallerMsg::Call(x) => {
                ctx.tell(&self.to, x)
                    .map_err(|e| StageError::user(e.to_string()))?;
            }
            CallerMsg::Answer(x) => ctx.emit(x),
        }
        Ok(())
    }
}

#[tokio::test]
async fn an_actor_telling_the_proxy_gets_the_reply_in_its_mailbox() {
    let (to, mut inbox) = proxy::<u64>(8);
    let g = Source::actor(Props::new(move || Caller { to: to.clone() }))
        .take(2)
        .to_mat(Sink::collect(), Keep::both);
    let ((caller, done), _h) = Materializer::new().materialize(&g).expect("materializes");
    for x in [1u64, 2, 3] {
        caller.tell(CallerMsg::Call(x)).await.expect("told");
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        timed(inbox.recv(&mut got, 8)).await;
    }
    let mut it = got.into_iter();
    // A reply of another type than the sending actor takes is given back.
    let first = it.next().expect("first");
    let reply = first.reply.expect("an actor's tell has its sender");
    assert!(!reply.is_ask());
    assert_eq!(reply.sender_path(), Some(caller.path()));
    let back = reply
        .send(Box::new("not a CallerMsg"))
        .expect_err("refused");
    assert_eq!(
        *back.downcast::<&str>().expect("the same box"),
        "not a CallerMsg"
    );
    for m in it {
        let reply = m.reply.expect("an actor's tell has its sender");
        reply
            .send(Box::new(CallerMsg::Answer(m.msg * 10)))
            .map_err(|_| "refused")
            .expect("the sender takes CallerMsg");
    }
    assert_eq!(timed(done).await.expect("completes"), vec![20, 30]);
}

#[tokio::test]
async fn a_closed_inbox_refuses_tells_and_send_ask_hands_back_the_pending_reply() {
    let (r, inbox) = proxy::<u32>(4);
    drop(inbox);
    assert_eq!(
        r.tell(1).await,
        Err(TellError::Stopped {
            actor: "remote://n2/svc/x".into()
        })
    );
    let (r, mut inbox) = proxy::<u32>(4);
    let pending = timed(r.send_ask(7)).await.expect("queued");
    let second = timed(r.send_ask(8)).await.expect("queued");
    let mut got = Vec::new();
    timed(inbox.recv(&mut got, 10)).await;
    let mut it = got.into_iter();
    let first = it.next().expect("first");
    assert_eq!(first.msg, 7);
    first
        .reply
        .expect("replier")
        .send(Box::new("seven"))
        .expect("delivered");
    let reply = timed(pending).await.expect("a reply");
    assert_eq!(*reply.downcast::<&str>().expect("a &str"), "seven");
    drop(it);
    assert!(timed(second).await.is_none(), "no reply once dropped");
}

#[tokio::test]
async fn forward_passes_messages_on_with_their_reply_targets() {
    // Asks and tells to the first proxy are forwarded to the second, in order; the answers
    // given through the second proxy's repliers reach the original askers.
    let (front, mut front_inbox) = proxy::<u32>(16);
    let (back, mut back_inbox) = proxy::<u32>(16);
    front.tell(1).await.expect("told");
    let asker = {
        let front = front.clone();
        tokio::spawn(async move { front.ask::<u32>(2, Duration::from_secs(10)).await })
    };
    let mut got = Vec::new();
    while got.len() < 2 {
        timed(front_inbox.recv(&mut got, 16)).await;
    }
    for incoming in got.drain(..) {
        back.forward(incoming).await.expect("forwarded");
    }
    let mut at_back = Vec::new();
    while at_back.len() < 2 {
        timed(back_inbox.recv(&mut at_back, 16)).await;
    }
    let msgs: Vec<u32> = at_back.iter().map(|m| m.msg).collect();
    assert_eq!(msgs, vec![1, 2]);
    assert!(at_back[0].reply.is_none());
    let Some(Incoming {
        msg,
        reply: Some(replier),
    }) = at_back.pop()
    else {
        panic!("the ask lost its reply target");
    };
    assert!(replier.is_ask());
    replier.send(Box::new(msg * 10)).expect("replied");
    assert_eq!(timed(asker).await.expect("joined").expect("answered"), 20);
    // Forwarding to a closed proxy fails and hands the message to dead letters.
    back_inbox.close();
    let err = back
        .forward(Incoming {
            msg: 3,
            reply: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TellError::Stopped { .. }), "{err}");
}
