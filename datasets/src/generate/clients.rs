//! Machine clients: service clients polling steadily on client credentials, partner
//! integrations syncing many customers' objects in bursts (benign traffic that reads like
//! enumeration), and nightly batch jobs exporting in bulk (benign traffic that reads like
//! exfiltration). They are the hard negatives of the benchmarks.

use outrider_ingest::{Identity, TokenEventKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::{self, ApiKind, Call, Endpoint};
use super::emit::{Emitter, TokenRecord};
use super::population::{
    api_key_hash, product_id, transaction_id, ClientKind, ClientProfile, PRODUCT_COUNT,
};
use super::rng::{hex_id, ms, stream, zipf_rank, STREAM_BATCH, STREAM_PARTNER, STREAM_SERVICE};
use super::users::{next_seasonal, seasonal_factor};
use super::{Actor, Shared, TrafficModel, World};

/// Token lifetime of machine clients.
pub(crate) const CLIENT_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;

pub(crate) fn actors(world: &World) -> Vec<(Option<i64>, Box<dyn Actor>)> {
    world
        .population
        .clients
        .iter()
        .enumerate()
        .map(|(idx, c)| {
            let domain = match c.kind {
                ClientKind::Service => STREAM_SERVICE,
                ClientKind::Partner => STREAM_PARTNER,
                ClientKind::Batch => STREAM_BATCH,
            };
            let mut rng = stream(world.seed, domain, idx as u64);
            let first = match c.kind {
                ClientKind::Service => Some(world.start_ms + rng.random_range(0..30_000)),
                ClientKind::Partner => {
                    Some(world.start_ms + ms(rng.random_range(0.0..c.period) * 60_000.0))
                }
                ClientKind::Batch => next_batch_run(world, c, world.start_ms, &mut rng),
            };
            let identity = Identity {
                client_id: c.api_key.is_none().then(|| c.name.clone()),
                api_key_hash: c.api_key.as_deref().map(api_key_hash),
                ..Identity::default()
            };
            let actor = ClientActor {
                idx,
                rng,
                identity,
                token_expires: i64::MIN,
                cursor: 0,
            };
            (first, Box::new(actor) as Box<dyn Actor>)
        })
        .collect()
}

/// When a batch job next runs: nightly at 01:00-04:00 UTC, or once in a short run.
fn next_batch_run(world: &World, c: &ClientProfile, after: i64, rng: &mut impl Rng) -> Option<i64> {
    let day = 86_400_000;
    let offset = 3_600_000 + ms(c.period * 3_600_000.0);
    if world.traffic == TrafficModel::Compressed && world.duration_ms() < day {
        if after > world.start_ms {
            return None;
        }
        let frac: f64 = rng.random_range(0.1..0.9);
        return Some(world.start_ms + ms(world.duration_ms() as f64 * frac));
    }
    let mut t = after.div_euclid(day) * day + offset;
    while t <= after {
        t += day;
    }
    Some(t)
}

#[derive(Debug)]
struct ClientActor {
    idx: usize,
    rng: ChaCha8Rng,
    identity: Identity,
    token_expires: i64,
    cursor: usize,
}

impl Actor for ClientActor {
    fn step(&mut self, now: i64, world: &World, _: &mut Shared, out: &mut Emitter) -> Option<i64> {
        let c = world.population.clients.get(self.idx)?;
        let mut t = now;
        if c.api_key.is_none() && t >= self.token_expires.saturating_sub(60_000) {
            t = self.token(c, t, out);
        }
        match c.kind {
            ClientKind::Service => {
                self.poll(c, t, out);
                Some(now + ms(c.period * 1000.0 * self.rng.random_range(0.9..1.1)))
            }
            ClientKind::Partner => {
                self.sync(world, c, t, out);
                let mean_ms = c.period * 60_000.0;
                match world.traffic {
                    TrafficModel::Compressed => {
                        Some(now + ms(mean_ms * self.rng.random_range(0.7..1.3)))
                    }
                    TrafficModel::Realistic => next_seasonal(
                        &mut self.rng,
                        now + 60_000,
                        world.end_ms,
                        86_400_000.0 / mean_ms,
                        |t| seasonal_factor(t, 1, 0.0, true),
                        4.0,
                    ),
                }
            }
            ClientKind::Batch => {
                self.export(world, c, t, out);
                next_batch_run(world, c, now, &mut self.rng)
            }
        }
    }
}

impl ClientActor {
    /// A client-credentials token through the gateway and the token server.
    fn token(&mut self, c: &ClientProfile, t: i64, out: &mut Emitter) -> i64 {
        let base = Identity {
            client_id: Some(c.name.clone()),
            ..Identity::default()
        };
        let done = out.api(
            &mut self.rng,
            t,
            Call::fixed(&catalog::TOKEN, 200),
            c.ip,
            c.user_agent,
            &base,
            None,
        );
        let token_id = hex_id(&mut self.rng);
        out.token(
            t + (done - t) * 7 / 10,
            TokenRecord {
                kind: TokenEventKind::TokenIssued,
                subject: None,
                client_id: Some(&c.name),
                grant_type: Some("client_credentials"),
                token_id: Some(&token_id),
            },
            c.ip,
            c.user_agent,
            None,
        );
        self.identity.token_id = Some(token_id);
        self.token_expires = done + CLIENT_TOKEN_TTL_MS;
        done + self.rng.random_range(20..200)
    }

    /// A service client's poll: a list, then zero to two items it watches.
    fn poll(&mut self, c: &ClientProfile, t: i64, out: &mut Emitter) {
        let (list, item): (&'static Endpoint, &'static Endpoint) = match c.api {
            ApiKind::Bank => (&catalog::ACCOUNTS, &catalog::PAYMENT),
            ApiKind::Retail => (&catalog::ORDERS, &catalog::ORDER),
            ApiKind::Saas => (&catalog::SEARCH, &catalog::DOCUMENT),
        };
        let rng = &mut self.rng;
        let status = if rng.random_bool(0.001) { 503 } else { 200 };
        let mut at = out.api(
            rng,
            t,
            Call::fixed(list, status),
            c.ip,
            c.user_agent,
            &self.identity,
            None,
        );
        if c.payments.is_empty() {
            return;
        }
        for _ in 0..rng.random_range(0..=2) {
            self.cursor = (self.cursor + 1) % c.payments.len();
            let status = if rng.random_bool(0.003) { 404 } else { 200 };
            let next = at + rng.random_range(20..200);
            let call = Call::with_ids(item, &[&c.payments[self.cursor]], status);
            at = out.api(rng, next, call, c.ip, c.user_agent, &self.identity, None);
        }
    }

    /// A partner's sync: many customers' objects, quickly, all allowed.
    fn sync(&mut self, world: &World, c: &ClientProfile, t: i64, out: &mut Emitter) {
        let rng = &mut self.rng;
        let mut calls = Vec::new();
        match c.api {
            ApiKind::Bank => {
                let share: f64 = rng.random_range(0.1..0.6);
                for &account in c.objects.iter().filter(|_| rng.random_bool(share)) {
                    calls.push(Call::with_ids(&catalog::ACCOUNT, &[&account], 200));
                    let mut tx = Call::with_ids(&catalog::TRANSACTIONS, &[&account], 200);
                    tx.size_factor = 0.5;
                    calls.push(tx);
                }
            }
            ApiKind::Retail => {
                calls.push(Call::fixed(&catalog::PRODUCTS, 200));
                for _ in 0..rng.random_range(50..400) {
                    let id = product_id(zipf_rank(rng, PRODUCT_COUNT));
                    let status = if rng.random_bool(0.01) { 404 } else { 200 };
                    calls.push(Call::with_ids(&catalog::PRODUCT, &[&id], status));
                }
            }
            ApiKind::Saas => {
                let chosen: Vec<u64> = c
                    .objects
                    .iter()
                    .copied()
                    .filter(|_| rng.random_bool(0.5))
                    .collect();
                for project in chosen {
                    calls.push(Call::with_ids(&catalog::DOCUMENTS, &[&project], 200));
                    let docs = world
                        .population
                        .orgs
                        .first()
                        .map_or(50, |o| o.documents_per_project);
                    for k in 0..rng.random_range(0..8u64) {
                        let doc = super::population::document_id(project, (k * 7) % docs.max(1));
                        calls.push(Call::with_ids(&catalog::DOCUMENT, &[&doc], 200));
                    }
                }
            }
        }
        let mut at = t;
        for call in calls {
            let done = out.api(rng, at, call, c.ip, c.user_agent, &self.identity, None);
            // A few requests in flight at once.
            at = at + (done - at) / 4 + rng.random_range(5..60);
        }
    }

    /// A batch job's export: every object it covers, back to back.
    fn export(&mut self, world: &World, c: &ClientProfile, t: i64, out: &mut Emitter) {
        let rng = &mut self.rng;
        let mut at = t;
        let projects: Vec<u64> = world
            .population
            .orgs
            .iter()
            .flat_map(|o| o.projects.iter().copied())
            .take(200)
            .collect();
        let n = c.objects.len();
        for i in 0..n {
            let call = match c.api {
                ApiKind::Bank => {
                    let account = c.objects[i];
                    Call::with_ids(
                        &catalog::STATEMENT,
                        &[&account, &transaction_id(account, 0)],
                        200,
                    )
                }
                ApiKind::Retail => Call::with_ids(&catalog::ORDER, &[&c.objects[i]], 200),
                ApiKind::Saas => match projects.get(i) {
                    Some(p) => Call::with_ids(&catalog::EXPORT, &[p], 200),
                    None => break,
                },
            };
            let done = out.api(rng, at, call, c.ip, c.user_agent, &self.identity, None);
            at = done + rng.random_range(5..50);
        }
    }
}
