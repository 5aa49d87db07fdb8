//! Whether the instance has accepted the credentials. The instance counts every refused login toward the
//! account's lockout (`docs/servicenow.md`), so refused credentials must cost one request, not one per request in
//! flight: until an answer proves them, requests go one at a time; once the instance refused them, no request is
//! sent with them again, and each gets the first refusal. [`Standing::reset`] starts over (a new cycle of the
//! service: the password may have been fixed meanwhile).

use std::sync::{Mutex, PoisonError};

use crate::snow::ApiError;

#[derive(Default)]
pub(super) struct Standing {
    /// Held by the one request that proves the credentials while they are unproven.
    gate: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Unproven,
    Proven,
    Refused(Box<ApiError>),
}

/// A request's turn: while the credentials are unproven it holds the gate, and the others wait for its answer.
pub(super) struct Turn<'a> {
    _gate: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Standing {
    fn state(&self) -> State {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, next: impl FnOnce(&State) -> Option<State>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = next(&state) {
            *state = next;
        }
    }

    /// Waits for the turn of one request: at once when the credentials are proven; alone, after the requests
    /// before it, while they are not; never (the first refusal) once they were refused.
    pub(super) async fn turn(&self) -> Result<Turn<'_>, ApiError> {
        match self.state() {
            State::Proven => return Ok(Turn { _gate: None }),
            State::Refused(e) => return Err(*e),
            State::Unproven => {}
        }
        let gate = self.gate.lock().await;
        match self.state() {
            State::Proven => Ok(Turn { _gate: None }),
            State::Refused(e) => Err(*e),
            State::Unproven => Ok(Turn { _gate: Some(gate) }),
        }
    }

    /// An answer showed that the instance accepted the credentials.
    pub(super) fn proven(&self) {
        self.set(|state| matches!(state, State::Unproven).then_some(State::Proven));
    }

    /// The instance refused the credentials: `refusal` is what every later request gets instead of being sent.
    pub(super) fn refused(&self, refusal: &ApiError) {
        self.set(|state| (!matches!(state, State::Refused(_))).then(|| State::Refused(Box::new(refusal.clone()))));
    }

    /// Forgets what the instance said: the next request proves the credentials again.
    pub(super) fn reset(&self) {
        self.set(|_| Some(State::Unproven));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::snow::ApiErrorKind;

    fn refusal() -> ApiError {
        ApiError::new("sys_user_role", ApiErrorKind::Unauthorized { who: "user svc".into(), secrets: String::new() })
    }

    #[tokio::test(start_paused = true)]
    async fn unproven_credentials_let_one_request_through_and_its_refusal_stops_the_others() {
        let standing = Arc::new(Standing::default());
        let first = standing.turn().await.expect("the first goes");
        let waiting = {
            let standing = Arc::clone(&standing);
            tokio::spawn(async move { standing.turn().await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "the second waits for the first's answer");
        standing.refused(&refusal());
        drop(first);
        let second = waiting.await.expect("joined").expect_err("refused without being sent");
        assert!(second.to_string().contains("HTTP 401 on sys_user_role"), "{second}");
        standing.reset();
        assert!(standing.turn().await.is_ok(), "a new cycle tries once more");
    }

    #[tokio::test(start_paused = true)]
    async fn proven_credentials_let_every_request_go_at_once() {
        let standing = Standing::default();
        let first = standing.turn().await.expect("the first goes");
        standing.proven();
        drop(first);
        let (a, b) = (standing.turn().await.expect("a"), standing.turn().await.expect("b"));
        assert!(a._gate.is_none() && b._gate.is_none(), "no gate once proven");
    }
}
