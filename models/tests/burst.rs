//! The MIDAS-R style burst detector on simulated edge streams: credential stuffing and
//! token replay score high from their first ticks, steady traffic (however heavy) low.

#![allow(clippy::unwrap_used)]

use outrider_models::burst::{BurstComponent, BurstDetectors, EdgeKind, MidasRParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One edge of a simulated stream and whether it belongs to the attack.
#[derive(Debug, Clone, Copy)]
struct Edge {
    src: u64,
    dst: u64,
    tick: u64,
    attack: bool,
}

const TICKS: u64 = 600;
/// Ticks at the start whose scores are not judged: a stream needs some history first.
const WARM_UP: u64 = 50;

fn detectors() -> BurstDetectors {
    BurstDetectors::new(&MidasRParams::default().check().unwrap())
}

/// IP -> identity logins: 400 users behind 100 home IPs (4 per IP), a fifth of them also on
/// a mobile IP, a corporate NAT with about 60 logins a tick, and a new user now and then.
/// With `attack`, one new IP tries 40 identities per tick for 5 ticks from tick 400.
fn logins(seed: u64, attack: bool) -> Vec<Edge> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut edges = Vec::new();
    let mut next_user = 10_000u64;
    for tick in 0..TICKS {
        let mut step = Vec::new();
        for user in 0..400u64 {
            if rng.random::<f32>() < 0.3 {
                let mobile = user % 5 == 0 && rng.random::<f32>() < 0.5;
                let ip = if mobile { 1_000 + user } else { user / 4 };
                step.push((ip, user));
            }
        }
        for _ in 0..rng.random_range(50..70) {
            step.push((5_000, 20_000 + rng.random_range(0..300u64)));
        }
        if rng.random::<f32>() < 0.1 {
            next_user += 1;
            for _ in 0..rng.random_range(1..=3) {
                step.push((next_user + 100_000, next_user));
            }
        }
        let mut step: Vec<Edge> = step
            .into_iter()
            .map(|(src, dst)| Edge {
                src,
                dst,
                tick,
                attack: false,
            })
            .collect();
        if attack && (400..405).contains(&tick) {
            for _ in 0..40 {
                step.push(Edge {
                    src: 666_666,
                    dst: rng.random_range(0..1_000u64),
                    tick,
                    attack: true,
                });
            }
        }
        shuffle(&mut step, &mut rng);
        edges.extend(step);
    }
    edges
}

/// Client -> token uses: 300 tokens held by 30 clients, each used 0-3 times a tick. With
/// `attack`, token 0 is used by a new client 20 times a tick for 4 ticks from tick 300.
fn token_uses(seed: u64, attack: bool) -> Vec<Edge> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut edges = Vec::new();
    for tick in 0..TICKS {
        let mut step = Vec::new();
        for token in 0..300u64 {
            let client = token % 30;
            for _ in 0..3 {
                if rng.random::<f32>() < 0.3 {
                    step.push(Edge {
                        src: client,
                        dst: token,
                        tick,
                        attack: false,
                    });
                }
            }
        }
        if attack && (300..304).contains(&tick) {
            for _ in 0..20 {
                step.push(Edge {
                    src: 999,
                    dst: 0,
                    tick,
                    attack: true,
                });
            }
        }
        shuffle(&mut step, &mut rng);
        edges.extend(step);
    }
    edges
}

/// Interleaves one tick's events (attack and normal traffic arrive mixed).
fn shuffle<T>(v: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
}

/// Scores every edge in order.
fn run(d: &mut BurstDetectors, kind: EdgeKind, edges: &[Edge]) -> Vec<f32> {
    edges
        .iter()
        .map(|e| d.observe(kind, e.src, e.dst, e.tick).score)
        .collect()
}

/// The highest score of normal edges from tick `from` on.
fn max_normal(edges: &[Edge], scores: &[f32], from: u64) -> f32 {
    edges
        .iter()
        .zip(scores)
        .filter(|(e, _)| !e.attack && e.tick >= from)
        .map(|(_, &s)| s)
        .fold(0.0, f32::max)
}

/// The highest score of the same kind of traffic without an attack: what steady traffic
/// reaches. (In the attacked stream, normal edges that share a key with the attack, such as
/// the owner's uses of a replayed token, rightly score high too.)
fn steady_max(kind: EdgeKind, quiet: &[Edge]) -> f32 {
    let scores = run(&mut detectors(), kind, quiet);
    max_normal(quiet, &scores, WARM_UP)
}

/// Scores of the attack's edges in its `n`-th tick (0 = first).
fn attack_tick(edges: &[Edge], scores: &[f32], n: u64) -> Vec<f32> {
    let first = edges.iter().find(|e| e.attack).unwrap().tick;
    edges
        .iter()
        .zip(scores)
        .filter(|(e, _)| e.attack && e.tick == first + n)
        .map(|(_, &s)| s)
        .collect()
}

#[test]
fn credential_stuffing_scores_high_from_its_first_tick() {
    let steady = steady_max(EdgeKind::IpIdentity, &logins(1, false));
    assert!(steady > 0.0, "the steady traffic has some noise");
    let edges = logins(1, true);
    let scores = run(&mut detectors(), EdgeKind::IpIdentity, &edges);

    let first = attack_tick(&edges, &scores, 0);
    let above = first.iter().filter(|&&s| s > steady).count();
    assert!(
        above * 4 >= first.len() * 3,
        "only {above} of {} first-tick attempts above the steady maximum {steady}",
        first.len()
    );
    for n in 1..5 {
        let tick = attack_tick(&edges, &scores, n);
        let low = tick.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(low > steady, "tick {n}: lowest {low} vs steady {steady}");
    }
    let peak = scores.iter().copied().fold(0.0, f32::max);
    assert!(peak > 20.0 * steady, "peak {peak} vs steady {steady}");
    let after = max_normal(&edges, &scores, 420);
    assert!(
        after <= 1.5 * steady,
        "after the attack {after} vs steady {steady}"
    );
}

#[test]
fn stuffing_is_blamed_on_the_source_ip() {
    let mut d = detectors();
    for e in logins(2, false).iter().filter(|e| e.tick < 300) {
        d.observe(EdgeKind::IpIdentity, e.src, e.dst, e.tick);
    }
    let mut last = None;
    for user in 0..40 {
        last = Some(d.observe(EdgeKind::IpIdentity, 666_666, 50_000 + user, 300));
    }
    let last = last.unwrap();
    assert_eq!(last.component, BurstComponent::Source);
    assert_eq!(last.rate, 20.0, "40 attempts this tick, decay 0.5");
    assert_eq!(last.expected, 1.0, "a new IP is expected at the floor rate");
    assert!(last
        .reason(EdgeKind::IpIdentity)
        .starts_with("IP -> identity burst: the IP made 20.0 edges per tick"));
}

#[test]
fn token_replay_from_a_new_client_scores_high() {
    let steady = steady_max(EdgeKind::ClientToken, &token_uses(3, false));
    let edges = token_uses(3, true);
    let scores = run(&mut detectors(), EdgeKind::ClientToken, &edges);
    let first = attack_tick(&edges, &scores, 0);
    let above = first.iter().filter(|&&s| s > steady).count();
    assert!(
        above * 2 >= first.len(),
        "only {above} of {} first-tick replays above the steady maximum {steady}",
        first.len()
    );
    for n in 1..4 {
        let low = attack_tick(&edges, &scores, n)
            .into_iter()
            .fold(f32::INFINITY, f32::min);
        assert!(low > steady, "tick {n}: lowest {low} vs steady {steady}");
    }
    let peak = scores.iter().copied().fold(0.0, f32::max);
    assert!(peak > 10.0 * steady, "peak {peak} vs steady {steady}");
    let after = max_normal(&edges, &scores, 320);
    assert!(
        after <= 1.5 * steady,
        "after the replay {after} vs steady {steady}"
    );
}

#[test]
fn volume_alone_is_not_a_burst() {
    // One NAT IP with about 200 logins a tick, steadily, for 600 ticks.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut d = detectors();
    let mut worst = 0.0f32;
    for tick in 0..TICKS {
        for _ in 0..rng.random_range(180..220) {
            let user = rng.random_range(0..5_000u64);
            let s = d.observe(EdgeKind::IpIdentity, 1, user, tick);
            if tick >= WARM_UP {
                worst = worst.max(s.score);
            }
        }
    }
    // The same IP doubling its rate for one tick does score.
    let mut burst = 0.0f32;
    for _ in 0..400 {
        let user = rng.random_range(0..5_000u64);
        burst = burst.max(d.observe(EdgeKind::IpIdentity, 1, user, TICKS).score);
    }
    assert!(worst < 5.0, "steady heavy IP scored {worst}");
    assert!(
        burst > 10.0 * worst.max(1.0),
        "doubling scored {burst} vs {worst}"
    );
}

#[test]
fn a_restored_checkpoint_scores_like_the_original() {
    let edges = logins(5, true);
    let (head, tail) = edges.split_at(edges.len() / 2 + 17);
    let mut straight = detectors();
    run(&mut straight, EdgeKind::IpIdentity, head);
    let json = serde_json::to_vec(&straight).unwrap();
    let mut restored: BurstDetectors = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        run(&mut straight, EdgeKind::IpIdentity, tail),
        run(&mut restored, EdgeKind::IpIdentity, tail)
    );
}

#[test]
fn replaying_the_same_edges_gives_the_same_scores() {
    let edges = token_uses(6, true);
    let a = run(&mut detectors(), EdgeKind::ClientToken, &edges);
    let b = run(&mut detectors(), EdgeKind::ClientToken, &edges);
    assert_eq!(a, b);
}
