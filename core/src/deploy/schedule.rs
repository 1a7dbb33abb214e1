//! The order a deploy's jobs may run in, as a pure dependency schedule: the
//! original's read/write lock per `repo@digest` without the locks. Inputs
//! come children first; a job that writes an object blocks later jobs that
//! read it (a manifest waits for the blobs and manifests earlier inputs
//! push) or write it again (twenty tags of one digest: the first pushes it,
//! the rest wait and find it there), and waits for earlier readers before it
//! writes. Jobs with nothing in common run side by side.

use std::collections::HashMap;

/// What a job touches: what it writes (`repo@digest` for the first ref of
/// an input in that repository, `repo:tag` for a tag) and what it reads
/// (the children and sources it needs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locks {
    /// The objects and tags it writes.
    pub writes: Vec<String>,
    /// The objects and tags it reads.
    pub reads: Vec<String>,
}

/// Jobs in input order, each startable once every earlier job it conflicts
/// with has finished.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Earlier conflicting jobs not finished yet, by job.
    blockers: Vec<usize>,
    /// Later jobs each job blocks.
    dependents: Vec<Vec<usize>>,
    /// Jobs not started yet whose blockers are all finished, in order.
    ready: std::collections::BTreeSet<usize>,
    started: Vec<bool>,
    finished: usize,
}

impl Schedule {
    /// The schedule of `jobs` (in input order).
    pub fn new(jobs: &[Locks]) -> Self {
        // Who touched each object so far: (job, whether it wrote).
        let mut touched: HashMap<&str, Vec<(usize, bool)>> = HashMap::new();
        let mut blockers = vec![0; jobs.len()];
        let mut dependents = vec![Vec::new(); jobs.len()];
        for (j, locks) in jobs.iter().enumerate() {
            let mut before: Vec<usize> = Vec::new();
            let accesses = locks
                .reads
                .iter()
                .map(|k| (k.as_str(), false))
                .chain(locks.writes.iter().map(|k| (k.as_str(), true)));
            for (key, write) in accesses {
                let earlier = touched.entry(key).or_default();
                // Readers conflict with writers; a writer with everyone.
                before.extend(earlier.iter().filter(|(_, w)| write || *w).map(|(i, _)| *i));
                earlier.push((j, write));
            }
            before.sort_unstable();
            before.dedup();
            before.retain(|i| *i != j);
            blockers[j] = before.len();
            for i in before {
                dependents[i].push(j);
            }
        }
        let ready = (0..jobs.len()).filter(|j| blockers[*j] == 0).collect();
        Schedule {
            blockers,
            dependents,
            ready,
            started: vec![false; jobs.len()],
            finished: 0,
        }
    }

    /// The first job (in input order) that may start now; it counts as started.
    pub fn start_next(&mut self) -> Option<usize> {
        let job = self.ready.pop_first()?;
        self.started[job] = true;
        Some(job)
    }

    /// Job `job` finished: the jobs it held back may start once nothing else does.
    pub fn finish(&mut self, job: usize) {
        self.finished += 1;
        for d in std::mem::take(&mut self.dependents[job]) {
            self.blockers[d] -= 1;
            if self.blockers[d] == 0 && !self.started[d] {
                self.ready.insert(d);
            }
        }
    }

    /// Whether every job has finished.
    pub fn is_done(&self) -> bool {
        self.finished == self.blockers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locks(writes: Option<&str>, reads: &[&str]) -> Locks {
        Locks {
            writes: writes.map(str::to_string).into_iter().collect(),
            reads: reads.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Starts everything that may start; the jobs started, in order.
    fn wave(s: &mut Schedule) -> Vec<usize> {
        std::iter::from_fn(|| s.start_next()).collect()
    }

    #[test]
    fn a_manifest_waits_for_the_children_earlier_inputs_push() {
        let jobs = [
            locks(Some("r@layer"), &[]),
            locks(Some("r@config"), &[]),
            locks(Some("r@image"), &["r@layer", "r@config"]),
            locks(Some("r@index"), &["r@image"]),
            locks(Some("other@blob"), &[]),
        ];
        let mut s = Schedule::new(&jobs);
        assert_eq!(
            wave(&mut s),
            [0, 1, 4],
            "blobs and an unrelated job at once"
        );
        s.finish(0);
        assert_eq!(
            wave(&mut s),
            Vec::<usize>::new(),
            "the image still needs its config"
        );
        s.finish(1);
        assert_eq!(wave(&mut s), [2]);
        s.finish(4);
        s.finish(2);
        assert_eq!(wave(&mut s), [3]);
        assert!(!s.is_done());
        s.finish(3);
        assert!(s.is_done());
    }

    #[test]
    fn twenty_tags_of_one_digest_push_it_once_then_tag_it() {
        // The first ref of an input writes repo@digest; the others read it.
        let mut jobs = vec![locks(Some("r@m"), &[])];
        jobs.extend((1..20).map(|_| locks(None, &["r@m"])));
        let mut s = Schedule::new(&jobs);
        assert_eq!(wave(&mut s), [0], "only the push goes first");
        s.finish(0);
        assert_eq!(
            wave(&mut s),
            (1..20).collect::<Vec<_>>(),
            "then every tag at once"
        );
        for j in 1..20 {
            s.finish(j);
        }
        assert!(s.is_done());
    }

    #[test]
    fn a_writer_waits_for_earlier_readers_and_writers() {
        let jobs = [
            locks(Some("r@a"), &[]),
            locks(None, &["r@a"]),
            locks(None, &["r@a"]),
            locks(Some("r@a"), &[]),
        ];
        let mut s = Schedule::new(&jobs);
        assert_eq!(wave(&mut s), [0]);
        s.finish(0);
        assert_eq!(wave(&mut s), [1, 2]);
        s.finish(1);
        assert_eq!(wave(&mut s), Vec::<usize>::new(), "a reader is still at it");
        s.finish(2);
        assert_eq!(wave(&mut s), [3]);
    }

    #[test]
    fn a_job_that_reads_what_it_writes_does_not_wait_for_itself() {
        let mut s = Schedule::new(&[locks(Some("r@a"), &["r@a"])]);
        assert_eq!(wave(&mut s), [0]);
        s.finish(0);
        assert!(s.is_done());
    }
}
