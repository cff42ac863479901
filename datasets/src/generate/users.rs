//! End users: one actor per user, one step per session. A session logs in (or, in the
//! realistic model, a mobile app resumes with its refresh token), walks the app's screens
//! as a Markov chain, refreshes its token before expiry, and ends with a logout or by
//! just stopping.

use std::net::IpAddr;

use outrider_ingest::{Identity, TokenEventKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::{self, bank, benign_status, retail, saas, ApiKind, Call};
use super::emit::{Emitter, TokenRecord};
use super::net;
use super::population::{product_id, transaction_id, UserProfile, PRODUCT_COUNT};
use super::rng::{exponential, hex_id, lognormal, ms, stream, uuid_v4, zipf_rank, STREAM_USER};
use super::{Actor, Shared, TrafficModel, World};

/// Token lifetime of user sessions; apps refresh a little before.
pub(crate) const USER_TOKEN_TTL_MS: i64 = 15 * 60 * 1000;

/// Chance, per screen of a mobile session, that the phone moves between Wi-Fi and cellular,
/// so one token is used from two addresses one after the other (benign).
const MOBILE_HANDOVER_PER_SCREEN: f64 = 0.03;

/// Relative activity by local hour: consumers (evenings, lunch) and people at work.
const CONSUMER_HOURS: [f64; 24] = [
    0.15, 0.08, 0.05, 0.04, 0.04, 0.08, 0.25, 0.6, 0.9, 0.85, 0.8, 0.85, 1.0, 0.95, 0.8, 0.75, 0.8,
    0.9, 1.0, 1.1, 1.15, 1.0, 0.7, 0.35,
];
const WORK_HOURS: [f64; 24] = [
    0.03, 0.02, 0.02, 0.02, 0.02, 0.04, 0.1, 0.35, 0.85, 1.0, 1.0, 0.95, 0.7, 0.9, 1.0, 1.0, 0.9,
    0.6, 0.3, 0.2, 0.15, 0.12, 0.08, 0.05,
];
/// Relative activity by weekday, Monday first.
const CONSUMER_DAYS: [f64; 7] = [1.0, 0.97, 0.98, 1.0, 1.08, 0.95, 0.85];
const WORK_DAYS: [f64; 7] = [1.0, 1.02, 1.0, 0.98, 0.9, 0.15, 0.1];

/// Daily and weekly cycles: the relative rate at `t` for a person `tz_hours` ahead of UTC
/// whose habits are shifted by `shift` hours, normalised so the mean over a week is 1.
pub(crate) fn seasonal_factor(t: i64, tz_hours: i64, shift: f64, work: bool) -> f64 {
    let (hours, days) = if work {
        (&WORK_HOURS, &WORK_DAYS)
    } else {
        (&CONSUMER_HOURS, &CONSUMER_DAYS)
    };
    let local_h = t.div_euclid(3_600_000) + tz_hours;
    let shifted = (local_h as f64 - shift).floor() as i64;
    let hour = usize::try_from(shifted.rem_euclid(24)).unwrap_or(0);
    // 1970-01-01 was a Thursday: day 0 + 3 is Monday-based index 3.
    let day = usize::try_from((local_h.div_euclid(24) + 3).rem_euclid(7)).unwrap_or(0);
    let hour_mean = hours.iter().sum::<f64>() / 24.0;
    let day_mean = days.iter().sum::<f64>() / 7.0;
    hours[hour] / hour_mean * days[day] / day_mean
}

/// The highest [`seasonal_factor`] can be (for thinning).
fn seasonal_peak(work: bool) -> f64 {
    let (hours, days): (&[f64], &[f64]) = if work {
        (&WORK_HOURS, &WORK_DAYS)
    } else {
        (&CONSUMER_HOURS, &CONSUMER_DAYS)
    };
    let max = |xs: &[f64]| xs.iter().copied().fold(0.0, f64::max);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    max(hours) / mean(hours) * max(days) / mean(days)
}

/// The next event of a Poisson process whose rate is `per_day` times the seasonal factor,
/// after `from` (by thinning); `None` past `until`.
pub(crate) fn next_seasonal(
    rng: &mut impl Rng,
    from: i64,
    until: i64,
    per_day: f64,
    factor: impl Fn(i64) -> f64,
    peak: f64,
) -> Option<i64> {
    let max_rate = per_day * peak / 86_400_000.0;
    if max_rate <= 0.0 || !max_rate.is_finite() {
        return None;
    }
    let mut t = from;
    for _ in 0..10_000 {
        t = t.saturating_add(ms(exponential(rng, 1.0 / max_rate)).max(1));
        if t >= until {
            return None;
        }
        if rng.random::<f64>() * peak < factor(t) {
            return Some(t);
        }
    }
    None
}

/// A replay victim's session, forced to cover the attack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForcedSession {
    pub user: usize,
    pub session_start: i64,
    pub min_end: i64,
}

/// What a finished session looked like.
#[derive(Debug)]
struct SessionOut {
    end_ms: i64,
    first_token: String,
}

/// One actor per user; the first wake-up is its first session.
pub(crate) fn actors(
    world: &World,
    forced: &[ForcedSession],
) -> Vec<(Option<i64>, Box<dyn Actor>)> {
    world
        .population
        .users
        .iter()
        .enumerate()
        .map(|(idx, user)| {
            let mut actor = UserActor {
                idx,
                rng: stream(world.seed, STREAM_USER, idx as u64),
                forced: forced.iter().find(|f| f.user == idx).copied(),
            };
            let first = actor.first_session(world, user);
            let first = match actor.forced {
                Some(f) => Some(first.map_or(f.session_start, |t| t.min(f.session_start))),
                None => first,
            };
            (first, Box::new(actor) as Box<dyn Actor>)
        })
        .collect()
}

#[derive(Debug)]
struct UserActor {
    idx: usize,
    rng: ChaCha8Rng,
    forced: Option<ForcedSession>,
}

thread_local! {
    /// The calls of the screen being emitted, reused from screen to screen.
    static CALLS: std::cell::RefCell<Vec<Call>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl UserActor {
    fn first_session(&mut self, world: &World, user: &UserProfile) -> Option<i64> {
        match world.traffic {
            TrafficModel::Compressed => {
                let mean_gap_ms = 3_600_000.0 / user.rate;
                Some(
                    world.start_ms
                        + user.active_from_ms
                        + ms(exponential(&mut self.rng, mean_gap_ms * 0.5)),
                )
            }
            TrafficModel::Realistic => self.next_realistic(world, user, world.start_ms),
        }
    }

    fn next_realistic(&mut self, world: &World, user: &UserProfile, from: i64) -> Option<i64> {
        let work = user.api == ApiKind::Saas;
        next_seasonal(
            &mut self.rng,
            from,
            world.end_ms,
            user.rate,
            |t| seasonal_factor(t, user.tz_hours, user.hour_shift, work),
            seasonal_peak(work),
        )
    }

    /// When to wake after a session that ended at `end`.
    fn after(&mut self, world: &World, user: &UserProfile, end: i64) -> Option<i64> {
        let next = match world.traffic {
            TrafficModel::Compressed => {
                let mean_gap_ms = 3_600_000.0 / user.rate;
                let t = end + 60_000 + ms(exponential(&mut self.rng, mean_gap_ms));
                (t < world.start_ms + user.active_to_ms).then_some(t)
            }
            TrafficModel::Realistic => self.next_realistic(world, user, end + 60_000),
        };
        match self.forced {
            Some(f) => Some(next.map_or(f.session_start, |t| t.min(f.session_start - 60_000))),
            None => next,
        }
    }
}

impl Actor for UserActor {
    fn step(
        &mut self,
        now: i64,
        world: &World,
        shared: &mut Shared,
        out: &mut Emitter,
    ) -> Option<i64> {
        let user = world.population.users.get(self.idx)?;
        if let Some(f) = self.forced {
            if now + 60_000 >= f.session_start {
                let s = self.session(
                    world,
                    user,
                    now.max(f.session_start),
                    Some(f.min_end),
                    world.end_ms,
                    out,
                );
                shared.stolen_tokens.insert(self.idx, s.first_token);
                self.forced = None;
                return self.after(world, user, s.end_ms);
            }
        }
        let hard_end = self
            .forced
            .map_or(world.end_ms, |f| f.session_start - 30_000);
        if now >= hard_end {
            return self.forced.map(|f| f.session_start);
        }
        let s = self.session(world, user, now, None, hard_end, out);
        self.after(world, user, s.end_ms)
    }
}

/// How a user authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// The apps: a login page, then the code exchanged for tokens.
    AuthorizationCode,
    /// The resource-owner password grant: scripts and attack tools.
    Password,
}

/// A login through the gateway's token endpoint (anonymous, so keyed by IP) and the token
/// server. Returns the new token id (on success) and when the response arrived.
#[allow(clippy::too_many_arguments)]
pub(crate) fn login(
    rng: &mut impl Rng,
    out: &mut Emitter,
    ts: i64,
    subject: &str,
    client_id: &str,
    grant: Grant,
    ip: IpAddr,
    user_agent: &str,
    success: bool,
    campaign: Option<u32>,
) -> (Option<String>, i64) {
    let status = if success { 200 } else { 401 };
    let done = out.api(
        rng,
        ts,
        Call::fixed(&catalog::TOKEN, status),
        ip,
        user_agent,
        &Identity::default(),
        campaign,
    );
    let at = ts + (done - ts) * 7 / 10;
    let grant_type = match grant {
        Grant::AuthorizationCode => "authorization_code",
        Grant::Password => "password",
    };
    let record = |kind, token_id| TokenRecord {
        kind,
        subject: Some(subject),
        client_id: Some(client_id),
        grant_type: Some(grant_type),
        token_id,
    };
    if !success {
        out.token(
            at,
            record(TokenEventKind::LoginFailure, None),
            ip,
            user_agent,
            campaign,
        );
        return (None, done);
    }
    let token_id = hex_id(rng);
    match grant {
        Grant::AuthorizationCode => {
            out.token(
                at,
                record(TokenEventKind::LoginSuccess, None),
                ip,
                user_agent,
                campaign,
            );
            out.token(
                at + 1,
                record(TokenEventKind::TokenIssued, Some(&token_id)),
                ip,
                user_agent,
                campaign,
            );
        }
        // One event, as Keycloak reports a direct grant: the login, with its token.
        Grant::Password => out.token(
            at,
            record(TokenEventKind::LoginSuccess, Some(&token_id)),
            ip,
            user_agent,
            campaign,
        ),
    }
    (Some(token_id), done)
}

/// A successful authorization-code [`login`] of `subject` through `client_id`, and the
/// identity its later calls carry; returns that identity and when the login finished.
#[allow(clippy::too_many_arguments)]
pub(crate) fn user_login(
    rng: &mut impl Rng,
    out: &mut Emitter,
    ts: i64,
    subject: &str,
    client_id: &str,
    ip: IpAddr,
    user_agent: &str,
    campaign: Option<u32>,
) -> (Identity, i64) {
    let (token, done) = login(
        rng,
        out,
        ts,
        subject,
        client_id,
        Grant::AuthorizationCode,
        ip,
        user_agent,
        true,
        campaign,
    );
    let identity = Identity {
        subject: Some(subject.to_owned()),
        client_id: Some(client_id.to_owned()),
        token_id: token,
        ..Identity::default()
    };
    (identity, done)
}

/// A token refresh through the gateway and the token server; returns the new token id and
/// when the response arrived.
#[allow(clippy::too_many_arguments)]
pub(crate) fn refresh(
    rng: &mut impl Rng,
    out: &mut Emitter,
    ts: i64,
    subject: Option<&str>,
    client_id: &str,
    ip: IpAddr,
    user_agent: &str,
    campaign: Option<u32>,
) -> (String, i64) {
    let done = out.api(
        rng,
        ts,
        Call::fixed(&catalog::TOKEN, 200),
        ip,
        user_agent,
        &Identity::default(),
        campaign,
    );
    let token_id = hex_id(rng);
    out.token(
        ts + (done - ts) * 7 / 10,
        TokenRecord {
            kind: TokenEventKind::TokenRefreshed,
            subject,
            client_id: Some(client_id),
            grant_type: Some("refresh_token"),
            token_id: Some(&token_id),
        },
        ip,
        user_agent,
        campaign,
    );
    (token_id, done)
}

/// Per-session state of the app.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pub account: usize,
    pub payments: Vec<String>,
    pub product: u64,
    pub cart: Vec<u64>,
    pub orders: Vec<u64>,
    pub project: u64,
    pub document: u64,
}

impl UserActor {
    /// The address of a new session: mobile users are on home Wi-Fi or a carrier address
    /// that changes between sessions; web users at home or, sometimes, the office;
    /// travellers on the network of wherever they are.
    fn session_ip(&mut self, world: &World, user: &UserProfile, t: i64) -> IpAddr {
        let realistic = world.traffic == TrafficModel::Realistic;
        let rng = &mut self.rng;
        if realistic {
            if let Some(trip) = user.trip_at(t) {
                return trip
                    .hotel_ip
                    .unwrap_or_else(|| net::addr_in(rng, trip.network));
            }
        }
        if user.mobile_client {
            if rng.random_bool(0.5) {
                user.home_ip
            } else if realistic {
                net::cgnat_addr(rng, user.carrier, 4)
            } else {
                net::addr_in(rng, user.carrier)
            }
        } else {
            let at_work = if realistic {
                seasonal_factor(t, user.tz_hours, 0.0, true) > 1.0
            } else {
                false
            };
            let p_office = match (realistic, at_work) {
                (false, _) => 0.12,
                (true, true) => 0.5,
                (true, false) => 0.03,
            };
            if rng.random_bool(p_office) {
                user.office_ip
            } else {
                user.home_ip
            }
        }
    }

    /// One session from `start`; it does not end before `min_end` and emits nothing at or
    /// after `hard_end`.
    fn session(
        &mut self,
        world: &World,
        user: &UserProfile,
        start: i64,
        min_end: Option<i64>,
        hard_end: i64,
        out: &mut Emitter,
    ) -> SessionOut {
        let realistic = world.traffic == TrafficModel::Realistic;
        let mut ip = self.session_ip(world, user, start);
        let ua = user.agent_at(start);
        let client_id = user.client_id();
        let screens = user.api.screens();
        let rng = &mut self.rng;
        let mut st = SessionState {
            account: user.account_index(rng),
            payments: if user.api == ApiKind::Bank {
                user.payments.clone()
            } else {
                Vec::new()
            },
            orders: user.objects.clone(),
            ..SessionState::default()
        };
        let mut t = start;
        let mut screen = 0u8;
        // Shoppers often browse as guests (keyed by their address) and log in later.
        let mut identity = Identity::default();
        let mut logged_in = false;
        let browse_first = user.api == ApiKind::Retail && min_end.is_none() && rng.random_bool(0.6);
        let mut first_token = String::new();
        let mut issued_at = t;
        let mut last;
        let mut natural_end = true;
        loop {
            let browsing = browse_first && retail::anonymous(screen);
            let needs_login = !logged_in && !browsing;
            if needs_login {
                let resume = realistic && user.mobile_client && rng.random_bool(0.5);
                let token = if resume {
                    // The app still holds a refresh token from an earlier session.
                    let (token, done) =
                        refresh(rng, out, t, Some(&user.subject), client_id, ip, ua, None);
                    t = done;
                    token
                } else {
                    if rng.random_bool(0.03) {
                        let (_, done) = login(
                            rng,
                            out,
                            t,
                            &user.subject,
                            client_id,
                            Grant::AuthorizationCode,
                            ip,
                            ua,
                            false,
                            None,
                        );
                        t = done + rng.random_range(3_000..15_000);
                    }
                    let (token, done) = login(
                        rng,
                        out,
                        t,
                        &user.subject,
                        client_id,
                        Grant::AuthorizationCode,
                        ip,
                        ua,
                        true,
                        None,
                    );
                    t = done;
                    token.unwrap_or_default()
                };
                first_token.clone_from(&token);
                identity = Identity {
                    subject: Some(user.subject.clone()),
                    client_id: Some(client_id.to_owned()),
                    token_id: Some(token),
                    ..Identity::default()
                };
                logged_in = true;
                issued_at = t;
                t += rng.random_range(150..900);
            }
            if logged_in && t - issued_at >= USER_TOKEN_TTL_MS - 30_000 {
                let (token, done) =
                    refresh(rng, out, t, Some(&user.subject), client_id, ip, ua, None);
                identity.token_id = Some(token);
                issued_at = done;
                t = done + rng.random_range(50..300);
            }
            if user.mobile_client && rng.random_bool(MOBILE_HANDOVER_PER_SCREEN) {
                // Wi-Fi <-> cellular handover: same token and device, a new address.
                ip = if ip == user.home_ip {
                    if realistic {
                        net::cgnat_addr(rng, user.carrier, 4)
                    } else {
                        net::addr_in(rng, user.carrier)
                    }
                } else {
                    user.home_ip
                };
            }
            last = CALLS.with_borrow_mut(|calls| {
                screen_calls(rng, world, user, screen, &mut st, logged_in, calls);
                emit_screen(rng, out, calls, t, ip, ua, &identity, user.mobile_client)
            });
            let keep_going = min_end.is_some_and(|m| last < m);
            let next = screens.next(screen, rng, user.end_scale, keep_going);
            if next == screens.end() {
                break;
            }
            let mut think = lognormal(rng, user.think_median_s, 0.9);
            if matches!(
                (user.api, next),
                (ApiKind::Bank, bank::TRANSACTION)
                    | (ApiKind::Retail, retail::PRODUCT)
                    | (ApiKind::Saas, saas::DOCUMENT)
            ) {
                think *= 0.6;
            }
            if matches!(
                (user.api, next),
                (ApiKind::Bank, bank::NEW_PAYMENT)
                    | (ApiKind::Retail, retail::CHECKOUT)
                    | (ApiKind::Saas, saas::EDIT)
            ) {
                think += rng.random_range(10.0..60.0);
            }
            let next_t = last + ms(think.clamp(1.0, 240.0) * 1000.0);
            if next_t >= hard_end || next_t >= out.end_ms() {
                natural_end = false;
                break;
            }
            t = next_t;
            screen = next;
        }
        if logged_in && natural_end && rng.random_bool(user.logout_probability()) {
            let at = last + rng.random_range(1_000..6_000);
            if at < hard_end {
                last = logout(rng, out, at, user, &identity, ip, ua);
            }
        }
        SessionOut {
            end_ms: last,
            first_token,
        }
    }
}

/// `POST /logout`, the token server's logout, and (browsers) the revocation.
fn logout(
    rng: &mut impl Rng,
    out: &mut Emitter,
    at: i64,
    user: &UserProfile,
    identity: &Identity,
    ip: IpAddr,
    ua: &str,
) -> i64 {
    let done = out.api(
        rng,
        at,
        Call::fixed(&catalog::LOGOUT, 204),
        ip,
        ua,
        identity,
        None,
    );
    let record = |kind| TokenRecord {
        kind,
        subject: Some(&user.subject),
        client_id: Some(user.client_id()),
        grant_type: None,
        token_id: identity.token_id.as_deref(),
    };
    out.token(done, record(TokenEventKind::Logout), ip, ua, None);
    if !user.mobile_client {
        out.token(done + 1, record(TokenEventKind::TokenRevoked), ip, ua, None);
    }
    done
}

/// Emits a screen's calls: apps fire them together, browsers one after another. Returns
/// when the last response arrived.
#[allow(clippy::too_many_arguments)]
fn emit_screen(
    rng: &mut impl Rng,
    out: &mut Emitter,
    calls: &mut Vec<Call>,
    t: i64,
    ip: IpAddr,
    ua: &str,
    identity: &Identity,
    parallel: bool,
) -> i64 {
    let mut at = t;
    let mut last = t;
    for c in calls.drain(..) {
        let done = out.api(rng, at, c, ip, ua, identity, None);
        last = last.max(done);
        at = if parallel {
            at + rng.random_range(5..120)
        } else {
            done + rng.random_range(10..200)
        };
    }
    last
}

/// The calls one screen makes, with benign statuses.
fn screen_calls(
    rng: &mut impl Rng,
    world: &World,
    user: &UserProfile,
    screen: u8,
    st: &mut SessionState,
    logged_in: bool,
    wanted: &mut Vec<Call>,
) {
    wanted.clear();
    match user.api {
        ApiKind::Bank => bank_calls(rng, user, screen, st, wanted),
        ApiKind::Retail => retail_calls(rng, user, screen, st, logged_in, wanted),
        ApiKind::Saas => saas_calls(rng, world, user, screen, st, wanted),
    }
    for c in wanted.iter_mut() {
        c.status = benign_status(rng, c.endpoint);
    }
}

fn bank_calls(
    rng: &mut impl Rng,
    user: &UserProfile,
    screen: u8,
    st: &mut SessionState,
    out: &mut Vec<Call>,
) {
    let account = |i: usize| user.objects.get(i).or(user.objects.first()).copied();
    match screen {
        bank::ACCOUNT => {
            st.account = user.account_index(rng);
            if let Some(a) = account(st.account) {
                out.push(Call::with_ids(&catalog::ACCOUNT, &[&a], 0));
                if rng.random_bool(0.75) {
                    out.push(Call::with_ids(&catalog::TRANSACTIONS, &[&a], 0));
                }
            }
        }
        bank::TRANSACTIONS => {
            if let Some(a) = account(st.account) {
                out.push(Call::with_ids(&catalog::TRANSACTIONS, &[&a], 0));
            }
        }
        bank::TRANSACTION => {
            if let Some(a) = account(st.account) {
                let k = (exponential(rng, 10.0) as u64).min(149);
                out.push(Call::with_ids(
                    &catalog::TRANSACTION,
                    &[&a, &transaction_id(a, k)],
                    0,
                ));
            }
        }
        bank::NEW_PAYMENT => {
            out.push(Call::fixed(&catalog::CREATE_PAYMENT, 0));
            if rng.random_bool(0.8) {
                let id = uuid_v4(rng);
                out.push(Call::with_ids(&catalog::PAYMENT, &[&id], 0));
                st.payments.push(id);
            }
        }
        bank::PAYMENT_STATUS => {
            if !st.payments.is_empty() {
                let i = rng.random_range(0..st.payments.len());
                out.push(Call::with_ids(&catalog::PAYMENT, &[&st.payments[i]], 0));
            }
        }
        bank::PROFILE => out.push(Call::fixed(&catalog::PROFILE, 0)),
        bank::CARDS => out.push(Call::fixed(&catalog::CARDS, 0)),
        _ => {
            out.push(Call::fixed(&catalog::ACCOUNTS, 0));
            let (p_profile, p_cards) = if user.mobile_client {
                (0.5, 0.4)
            } else {
                (0.25, 0.15)
            };
            if rng.random_bool(p_profile) {
                out.push(Call::fixed(&catalog::PROFILE, 0));
            }
            if rng.random_bool(p_cards) {
                out.push(Call::fixed(&catalog::CARDS, 0));
            }
        }
    }
}

fn retail_calls(
    rng: &mut impl Rng,
    user: &UserProfile,
    screen: u8,
    st: &mut SessionState,
    logged_in: bool,
    out: &mut Vec<Call>,
) {
    match screen {
        retail::SEARCH => out.push(Call::fixed(&catalog::PRODUCTS, 0)),
        retail::PRODUCT => {
            st.product = product_id(zipf_rank(rng, PRODUCT_COUNT));
            out.push(Call::with_ids(&catalog::PRODUCT, &[&st.product], 0));
            if rng.random_bool(0.35) {
                out.push(Call::with_ids(&catalog::REVIEWS, &[&st.product], 0));
            }
        }
        retail::ADD_TO_CART => {
            let item = if st.product == 0 {
                product_id(zipf_rank(rng, PRODUCT_COUNT))
            } else {
                st.product
            };
            st.cart.push(item);
            out.push(Call::fixed(&catalog::CART_ADD, 0));
            out.push(Call::fixed(&catalog::CART, 0));
        }
        retail::CART => {
            out.push(Call::fixed(&catalog::CART, 0));
            if !st.cart.is_empty() && rng.random_bool(0.12) {
                out.push(Call::fixed(&catalog::COUPON, 0));
            }
            if !st.cart.is_empty() && rng.random_bool(0.08) {
                let i = rng.random_range(0..st.cart.len());
                let item = st.cart.swap_remove(i);
                out.push(Call::with_ids(&catalog::CART_REMOVE, &[&item], 0));
            }
        }
        retail::CHECKOUT => {
            if st.cart.is_empty() {
                out.push(Call::fixed(&catalog::CART, 0));
            } else {
                st.cart.clear();
                let order = rng.random_range(10_000_000..100_000_000);
                st.orders.push(order);
                out.push(Call::fixed(&catalog::CHECKOUT, 0));
                out.push(Call::with_ids(&catalog::ORDER, &[&order], 0));
            }
        }
        retail::ORDERS => out.push(Call::fixed(&catalog::ORDERS, 0)),
        retail::ORDER => {
            if st.orders.is_empty() {
                out.push(Call::fixed(&catalog::ORDERS, 0));
            } else {
                let i = rng.random_range(0..st.orders.len());
                out.push(Call::with_ids(&catalog::ORDER, &[&st.orders[i]], 0));
            }
        }
        retail::ACCOUNT => out.push(Call::fixed(&catalog::SHOP_ACCOUNT, 0)),
        retail::GIFT_CARD => match user.payments.first() {
            Some(card) => out.push(Call::with_ids(&catalog::GIFT_CARD, &[card], 0)),
            None => out.push(Call::fixed(&catalog::SHOP_ACCOUNT, 0)),
        },
        _ => {
            out.push(Call::fixed(&catalog::PRODUCTS, 0));
            if logged_in && rng.random_bool(0.3) {
                out.push(Call::fixed(&catalog::CART, 0));
            }
        }
    }
}

fn saas_calls(
    rng: &mut impl Rng,
    world: &World,
    user: &UserProfile,
    screen: u8,
    st: &mut SessionState,
    out: &mut Vec<Call>,
) {
    let Some(org) = world.population.orgs.get(user.org) else {
        out.push(Call::fixed(&catalog::ME, 0));
        return;
    };
    fn pick_project(rng: &mut impl Rng, org: &super::population::Org) -> u64 {
        let n = org.projects.len() as u64;
        let i = usize::try_from(zipf_rank(rng, n)).unwrap_or(0);
        org.projects.get(i).copied().unwrap_or(0)
    }
    if st.project == 0 {
        st.project = pick_project(rng, org);
    }
    match screen {
        saas::PROJECT => {
            st.project = pick_project(rng, org);
            out.push(Call::with_ids(&catalog::PROJECT, &[&st.project], 0));
            out.push(Call::with_ids(&catalog::DOCUMENTS, &[&st.project], 0));
        }
        saas::DOCUMENT => {
            st.document = org.document(st.project, zipf_rank(rng, org.documents_per_project));
            out.push(Call::with_ids(&catalog::DOCUMENT, &[&st.document], 0));
        }
        saas::EDIT => {
            if st.document == 0 {
                st.document = org.document(st.project, zipf_rank(rng, org.documents_per_project));
            }
            if rng.random_bool(0.3) {
                out.push(Call::with_ids(&catalog::DOCUMENT, &[&st.document], 0));
            }
            out.push(Call::with_ids(&catalog::DOCUMENT_SAVE, &[&st.document], 0));
        }
        saas::CREATE => {
            st.document = rng.random_range(1_000_000..10_000_000);
            out.push(Call::fixed(&catalog::DOCUMENT_CREATE, 0));
            out.push(Call::with_ids(&catalog::DOCUMENT, &[&st.document], 0));
        }
        saas::SEARCH => out.push(Call::fixed(&catalog::SEARCH, 0)),
        saas::MEMBERS => out.push(Call::with_ids(&catalog::MEMBERS, &[&org.workspace], 0)),
        saas::EXPORT => out.push(Call::with_ids(&catalog::EXPORT, &[&st.project], 0)),
        _ => {
            out.push(Call::fixed(&catalog::ME, 0));
            out.push(Call::with_ids(&catalog::WORKSPACE, &[&org.workspace], 0));
            if rng.random_bool(0.6) {
                out.push(Call::with_ids(&catalog::PROJECTS, &[&org.workspace], 0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_factors_average_to_one_and_peak_in_the_day() {
        let week_ms = 7 * 86_400_000i64;
        let start = super::super::DEFAULT_START_MS;
        for work in [false, true] {
            let n = 7 * 24;
            let mean: f64 = (0..n)
                .map(|h| seasonal_factor(start + h * 3_600_000, 0, 0.0, work))
                .sum::<f64>()
                / n as f64;
            assert!((mean - 1.0).abs() < 0.02, "{mean}");
            let peak = (0..n)
                .map(|h| seasonal_factor(start + h * 3_600_000, 0, 0.0, work))
                .fold(0.0, f64::max);
            assert!(peak <= seasonal_peak(work) + 1e-9);
        }
        // 2026-11-02 is a Monday: 03:00 UTC is quiet, 20:00 busy for consumers; Sunday
        // afternoon is quiet for people at work.
        let monday = start - 8 * 3_600_000;
        let night = seasonal_factor(monday + 3 * 3_600_000, 0, 0.0, false);
        let evening = seasonal_factor(monday + 20 * 3_600_000, 0, 0.0, false);
        assert!(evening > 10.0 * night, "{evening} vs {night}");
        let sunday = monday + 6 * 86_400_000 + 15 * 3_600_000;
        let tuesday = monday + 86_400_000 + 15 * 3_600_000;
        assert!(
            seasonal_factor(tuesday, 0, 0.0, true) > 5.0 * seasonal_factor(sunday, 0, 0.0, true)
        );
        let _ = week_ms;
    }

    #[test]
    fn thinning_follows_the_seasonal_rate() {
        let mut rng = stream(3, 99, 0);
        let monday = super::super::DEFAULT_START_MS - 8 * 3_600_000;
        let until = monday + 7 * 86_400_000;
        let factor = |t: i64| seasonal_factor(t, 0, 0.0, false);
        let mut t = monday;
        let mut by_hour = [0u32; 24];
        let mut n = 0u32;
        while let Some(next) =
            next_seasonal(&mut rng, t, until, 200.0, factor, seasonal_peak(false))
        {
            by_hour[usize::try_from(next.div_euclid(3_600_000).rem_euclid(24)).unwrap_or(0)] += 1;
            n += 1;
            t = next;
        }
        // 200 a day for a week.
        assert!((1_250..1_550).contains(&n), "{n}");
        assert!(by_hour[20] > 4 * by_hour[3], "{by_hour:?}");
    }
}
