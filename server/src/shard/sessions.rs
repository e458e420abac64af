//! The shard's registry of its sessions: each session's handle (its bounded
//! inbox and the sets the shard's mailbox updates the moment an event
//! arrives), indexed by user and by subscribed conversation. This is routing
//! state: a fan-out reaches a shard once and the shard hands it to the
//! sessions here. The connections themselves are `crate::session`'s.

use crate::ids::{ConvId, Frame};
use crate::shard::msg::{Fanout, UserEvent};
use chat_protocol::v1::ErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};

/// What the shard hands a session.
#[derive(Debug)]
pub enum SessionMsg {
    /// A fan-out of a subscribed conversation.
    Fanout(ConvId, Fanout),
    /// An event for this user.
    User(UserEvent),
    /// The server is stopping: write this `Goodbye` push.
    Goodbye(Frame),
}

/// The shard's view of a session.
pub struct SessionHandle {
    /// Unique id.
    pub id: u64,
    /// Whose.
    pub user: Arc<str>,
    /// Its bounded inbox.
    pub tx: mpsc::Sender<SessionMsg>,
    /// Conversations it is subscribed to.
    pub attached: RefCell<HashSet<ConvId>>,
    /// Conversations whose fan-out was dropped (full inbox): fill from the store.
    pub lagged: RefCell<HashSet<ConvId>>,
    /// A user event was dropped: reload the conversation list.
    pub lost_user_event: Cell<bool>,
    /// Conversations the user was removed from: nothing more of them is
    /// written, whatever is still queued. Set by the shard's mailbox the moment
    /// the removal arrives, before the session's own queue gets to it.
    pub revoked: RefCell<HashSet<ConvId>>,
    /// Wakes the outbound task after a drop.
    pub wake: Notify,
    /// Set when the session must end now (revoked, user disabled): the code
    /// and reason it closes with. The read loop waits on [`Self::closing`].
    pub close_with: RefCell<Option<(ErrorCode, Arc<str>)>>,
    /// Wakes the read loop to close the session.
    pub closing: Notify,
}

impl SessionHandle {
    /// A session's handle with its inbox; subscribed to nothing yet.
    pub fn new(id: u64, user: Arc<str>, tx: mpsc::Sender<SessionMsg>) -> Self {
        Self {
            id,
            user,
            tx,
            attached: RefCell::default(),
            lagged: RefCell::default(),
            lost_user_event: Cell::new(false),
            revoked: RefCell::default(),
            wake: Notify::new(),
            close_with: RefCell::default(),
            closing: Notify::new(),
        }
    }

    /// Ends the session at once with `code` and `reason` (the first such wins).
    pub fn close(&self, code: ErrorCode, reason: Arc<str>) {
        self.close_with.borrow_mut().get_or_insert((code, reason));
        self.closing.notify_one();
    }

    /// Hands a fan-out to the session; stored messages are never dropped
    /// silently: a full inbox marks the conversation for a store fill.
    pub fn deliver(&self, conv: ConvId, f: &Fanout) {
        let stored = matches!(f, Fanout::Messages(_) | Fanout::Nudge { .. });
        if self.tx.try_send(SessionMsg::Fanout(conv, f.clone())).is_err() && stored {
            self.lagged.borrow_mut().insert(conv);
            self.wake.notify_one();
        }
    }

    /// Hands a user event to the session.
    pub fn deliver_user(&self, ev: &UserEvent) {
        if self.tx.try_send(SessionMsg::User(ev.clone())).is_err() {
            self.lost_user_event.set(true);
            self.wake.notify_one();
        }
    }
}

/// Sessions on this shard, by user and by subscribed conversation.
#[derive(Default)]
pub struct LocalSessions {
    by_user: HashMap<Arc<str>, Vec<Rc<SessionHandle>>>,
    by_conv: HashMap<ConvId, Vec<Rc<SessionHandle>>>,
}

impl LocalSessions {
    /// Registers a session under its user.
    pub fn add_user(&mut self, s: &Rc<SessionHandle>) {
        self.by_user.entry(s.user.clone()).or_default().push(s.clone());
    }

    /// Unregisters a session from its user and every conversation; the
    /// conversations no session here subscribes to any more.
    pub fn remove(&mut self, s: &SessionHandle) -> Vec<ConvId> {
        if let Some(v) = self.by_user.get_mut(&s.user) {
            v.retain(|x| x.id != s.id);
            if v.is_empty() {
                self.by_user.remove(&s.user);
            }
        }
        let convs: Vec<ConvId> = s.attached.borrow().iter().copied().collect();
        convs.into_iter().filter(|&c| self.unsubscribe(c, s.id)).collect()
    }

    /// Subscribes a session to a conversation.
    pub fn subscribe(&mut self, conv: ConvId, s: &Rc<SessionHandle>) {
        s.attached.borrow_mut().insert(conv);
        let v = self.by_conv.entry(conv).or_default();
        if !v.iter().any(|x| x.id == s.id) {
            v.push(s.clone());
        }
    }

    /// Unsubscribes; true when no session here subscribes to `conv` any more.
    /// A local owner learns lazily when the shard has nobody left (the
    /// mailbox answers the next fan-out that finds no session).
    pub fn unsubscribe(&mut self, conv: ConvId, session_id: u64) -> bool {
        let Some(v) = self.by_conv.get_mut(&conv) else { return false };
        v.retain(|x| {
            if x.id == session_id {
                x.attached.borrow_mut().remove(&conv);
                false
            } else {
                true
            }
        });
        if v.is_empty() {
            self.by_conv.remove(&conv);
            return true;
        }
        false
    }

    /// Sessions subscribed to a conversation.
    pub fn of_conv(&self, conv: ConvId) -> &[Rc<SessionHandle>] {
        self.by_conv.get(&conv).map_or(&[], |v| v.as_slice())
    }

    /// The conversations some session here subscribes to.
    pub fn convs(&self) -> impl Iterator<Item = ConvId> + '_ {
        self.by_conv.keys().copied()
    }

    /// Sessions of a user.
    pub fn of_user(&self, user: &str) -> &[Rc<SessionHandle>] {
        self.by_user.get(user).map_or(&[], |v| v.as_slice())
    }

    /// Number of sessions.
    pub fn count(&self) -> usize {
        self.by_user.values().map(Vec::len).sum()
    }
}
