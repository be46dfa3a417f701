//! Delivering run results to the event loops that wait for them.
//!
//! A worker finishing a batch of 32 jobs would, with a plain channel per job, wake 32 tasks
//! from outside their runtime: 32 cross-thread wake-ups of the same event loop. Here each event
//! loop has a [`Relay`]: the worker hands it the wakers of every job of the batch and wakes it
//! once; the relay, running on the event loop, wakes the waiting tasks locally.

use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The engine dropped a job without running it (shutdown).
#[derive(Debug)]
pub struct Abandoned;

struct State<T> {
    value: Option<Result<T, Abandoned>>,
    waker: Option<Waker>,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    /// Set when the receiver is dropped (its client disconnected or stopped waiting), so the
    /// engine can drop the job instead of running it for nobody.
    receiver_gone: AtomicBool,
}

/// The waiting side: resolves to the result, or [`Abandoned`].
pub struct Receiver<T> {
    slot: Arc<Slot<T>>,
}

/// The worker's side. Dropping it unsent resolves the receiver to [`Abandoned`].
pub struct Sender<T> {
    slot: Option<Arc<Slot<T>>>,
    relay: Option<Arc<Relay>>,
}

pub fn channel<T>(relay: Option<Arc<Relay>>) -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            value: None,
            waker: None,
        }),
        receiver_gone: AtomicBool::new(false),
    });
    (
        Sender {
            slot: Some(slot.clone()),
            relay,
        },
        Receiver { slot },
    )
}

/// A sender nobody receives from, for a job whose result goes to a hook (see
/// `RunJob::then`): it never counts as abandoned by its receiver.
pub fn detached<T>() -> Sender<T> {
    Sender {
        slot: Some(Arc::new(Slot {
            state: Mutex::new(State {
                value: None,
                waker: None,
            }),
            receiver_gone: AtomicBool::new(false),
        })),
        relay: None,
    }
}

impl<T> Sender<T> {
    /// Whether nobody waits for the result any more.
    pub fn receiver_gone(&self) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|s| s.receiver_gone.load(Ordering::Relaxed))
    }

    fn deliver(&mut self, value: Result<T, Abandoned>, batched: bool) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let waker = {
            let mut s = slot.state.lock();
            s.value = Some(value);
            s.waker.take()
        };
        if let Some(r) = &self.relay {
            r.delivered
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        if let Some(w) = waker {
            match (&self.relay, batched) {
                (Some(relay), true) => relay.wakers.lock().push(w),
                _ => w.wake(),
            }
        }
    }

    /// Delivers now, waking the receiver at once.
    pub fn send(mut self, value: T) {
        self.deliver(Ok(value), false);
    }

    /// Delivers as part of a batch: the receiver wakes when its relay is flushed
    /// ([`Relay::flush`]), which the sender of the batch must do.
    pub fn send_batched(mut self, value: T) -> Option<Arc<Relay>> {
        self.deliver(Ok(value), true);
        self.relay.take()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.deliver(Err(Abandoned), false);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.slot.receiver_gone.store(true, Ordering::Relaxed);
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, Abandoned>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.state.lock();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// An event loop's relay: wakers handed over by workers, woken on the loop itself.
#[derive(Default)]
pub struct Relay {
    wakers: Mutex<Vec<Waker>>,
    notify: tokio::sync::Notify,
    /// Results delivered to this loop so far, batched or not.
    delivered: std::sync::atomic::AtomicU64,
}

impl Relay {
    /// Starts a relay on the current tokio runtime (an event loop).
    pub fn start() -> Arc<Relay> {
        let relay = Arc::new(Relay::default());
        let r = relay.clone();
        tokio::spawn(async move {
            loop {
                r.notify.notified().await;
                let wakers = std::mem::take(&mut *r.wakers.lock());
                for w in wakers {
                    w.wake();
                }
            }
        });
        relay
    }

    /// How many results were delivered to this loop so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Wakes the relay (once) if wakers were handed to it.
    pub fn flush(&self) {
        if !self.wakers.lock().is_empty() {
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn batched_results_wake_through_the_relay() {
        let relay = Relay::start();
        let mut rxs = Vec::new();
        let mut txs = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = channel::<u32>(Some(relay.clone()));
            txs.push(tx);
            rxs.push(tokio::spawn(rx));
        }
        tokio::task::yield_now().await;
        let worker = std::thread::spawn(move || {
            let mut relays = Vec::new();
            for (i, tx) in txs.into_iter().enumerate() {
                relays.extend(tx.send_batched(i as u32));
            }
            relays[0].flush();
        });
        worker.join().unwrap();
        for (i, rx) in rxs.into_iter().enumerate() {
            assert_eq!(rx.await.unwrap().unwrap(), i as u32);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_sender_abandons_the_receiver() {
        let (tx, rx) = channel::<u32>(None);
        drop(tx);
        assert!(rx.await.is_err());
    }
}
