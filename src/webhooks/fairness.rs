//! Who gets the free delivery slots. A node sends a bounded number of deliveries at once; each
//! endpoint may have a bounded number in flight (across all nodes); and when slots are scarce
//! they go round-robin across organizations first, then across each organization's endpoints.
//! So an organization with many endpoints, or one slow endpoint with a long backlog, cannot
//! crowd out anyone else.

use std::collections::BTreeMap;

/// One endpoint with work due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand<K> {
    pub key: K,
    pub org: String,
    /// Deliveries due now (an upper bound: some may turn out to be held behind a predecessor).
    pub due: usize,
    /// Deliveries of this endpoint being sent right now, by any node.
    pub in_flight: usize,
}

/// Slots granted per demand, in the order given. `rotation` shifts which organization goes
/// first, so that over successive rounds none is always first when slots run out.
pub fn allocate<K>(
    demands: &[Demand<K>],
    per_endpoint: usize,
    free: usize,
    rotation: usize,
) -> Vec<usize> {
    let mut granted = vec![0; demands.len()];
    let room = |i: usize| {
        let d = &demands[i];
        d.due.min(per_endpoint.saturating_sub(d.in_flight))
    };
    // Organizations in a stable order, each with its endpoints' indexes.
    let mut by_org: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in demands.iter().enumerate() {
        if room(i) > 0 {
            by_org.entry(d.org.as_str()).or_default().push(i);
        }
    }
    let mut orgs: Vec<Vec<usize>> = by_org.into_values().collect();
    if orgs.is_empty() {
        return granted;
    }
    let first = rotation % orgs.len();
    orgs.rotate_left(first);
    let mut next_in_org = vec![0usize; orgs.len()];
    let mut left = free;
    while left > 0 {
        let mut progressed = false;
        for (o, endpoints) in orgs.iter().enumerate() {
            if left == 0 {
                break;
            }
            // The organization's next endpoint that still has room, round-robin.
            for step in 0..endpoints.len() {
                let i = endpoints[(next_in_org[o] + step) % endpoints.len()];
                if granted[i] < room(i) {
                    granted[i] += 1;
                    left -= 1;
                    next_in_org[o] = (next_in_org[o] + step + 1) % endpoints.len();
                    progressed = true;
                    break;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(key: &'static str, org: &str, due: usize, in_flight: usize) -> Demand<&'static str> {
        Demand {
            key,
            org: org.to_owned(),
            due,
            in_flight,
        }
    }

    #[test]
    fn an_endpoint_never_gets_more_than_its_bound_in_flight() {
        let d = [demand("slow", "a", 1_000, 14), demand("fast", "b", 3, 0)];
        assert_eq!(allocate(&d, 16, 512, 0), vec![2, 3]);
        let full = [demand("slow", "a", 1_000, 16)];
        assert_eq!(allocate(&full, 16, 512, 0), vec![0]);
    }

    #[test]
    fn scarce_slots_go_round_robin_across_organizations_then_endpoints() {
        // Organization "a" has three endpoints with long backlogs, "b" one.
        let d = [
            demand("a1", "a", 100, 0),
            demand("a2", "a", 100, 0),
            demand("a3", "a", 100, 0),
            demand("b1", "b", 100, 0),
        ];
        // Six slots: three each for a and b; a's spread over its endpoints.
        assert_eq!(allocate(&d, 16, 6, 0), vec![1, 1, 1, 3]);
        // One slot: the rotation decides who goes first.
        assert_eq!(allocate(&d, 16, 1, 0), vec![1, 0, 0, 0]);
        assert_eq!(allocate(&d, 16, 1, 1), vec![0, 0, 0, 1]);
    }

    #[test]
    fn an_organization_without_room_takes_no_turn_in_the_rotation() {
        // "a" is at its bound: the rotation is over "b" and "c" only, so rotation 1 is "c".
        let d = [
            demand("a1", "a", 9, 16),
            demand("b1", "b", 9, 0),
            demand("c1", "c", 9, 0),
        ];
        assert_eq!(allocate(&d, 16, 1, 1), vec![0, 0, 1]);
    }

    #[test]
    fn within_an_organization_the_turn_passes_over_full_endpoints_in_order() {
        // e0 has room for one; the others for three. After e0 is full, the turn goes on
        // from where it stopped (e1, e2, e3, e1, e2), not back to the first endpoint.
        let d = [
            demand("e0", "a", 1, 0),
            demand("e1", "a", 3, 0),
            demand("e2", "a", 3, 0),
            demand("e3", "a", 3, 0),
        ];
        assert_eq!(allocate(&d, 16, 6, 0), vec![1, 2, 2, 1]);
        assert_eq!(allocate(&d, 16, 5, 0), vec![1, 2, 1, 1]);
    }

    #[test]
    fn nothing_is_granted_beyond_what_is_due_or_free() {
        let d = [demand("a1", "a", 2, 0), demand("b1", "b", 1, 0)];
        assert_eq!(allocate(&d, 16, 100, 0), vec![2, 1]);
        assert_eq!(allocate(&d, 16, 0, 0), vec![0, 0]);
        assert_eq!(allocate::<&str>(&[], 16, 10, 3), Vec::<usize>::new());
    }
}
