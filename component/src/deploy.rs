//! `client.deploy`: the core's deploy operation, run by the one driver,
//! with its progress lines written to stderr as they happen.

use ocirelay_core::deploy::{dry_run_json, progress_line, Progress};
use ocirelay_core::ops::deploy::{Deploy, Event, Report};
use ocirelay_core::{Client, Operation, Output};

use crate::bindings::exports::ocirelay::registry::registry as wit;

/// The deploy, printing a progress line for each event it reports.
#[derive(Debug)]
pub struct WithProgress<'a> {
    pub deploy: &'a mut Deploy,
    pub print: bool,
}

impl Operation for WithProgress<'_> {
    type Outcome = <Deploy as Operation>::Outcome;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        let output = self.deploy.poll_output(client);
        let events: Vec<Event> = self.deploy.take_events().collect();
        if self.print {
            for event in events {
                eprintln!("{}", line(self.deploy, event));
            }
        }
        output
    }
}

/// The progress line of `event`.
fn line(deploy: &Deploy, event: Event) -> String {
    let (job, finished) = match event {
        Event::Started(job) => (job, false),
        Event::Finished(job) => (job, true),
    };
    let j = &deploy.jobs()[job];
    let input = &deploy.inputs()[j.input];
    let message;
    let progress = match (finished, deploy.outcome(job)) {
        (false, _) | (true, None) => Progress::Started,
        (true, Some(Ok(Report::Pushed(d)))) => Progress::Succeeded(&d.digest),
        (true, Some(Ok(Report::UpToDate))) => Progress::UpToDate,
        (true, Some(Ok(Report::WouldChange))) => Progress::WouldChange,
        (true, Some(Err(e))) => {
            message = ocirelay_core::error::printable(&e.to_string()).into_owned();
            Progress::Failed(&message)
        }
    };
    progress_line(input, j, progress)
}

/// One result per job, in order.
pub fn results(
    deploy: &Deploy,
    outcomes: Vec<Option<ocirelay_core::Result<Report>>>,
) -> Vec<wit::DeployResult> {
    outcomes
        .into_iter()
        .enumerate()
        .map(|(job, outcome)| {
            let j = &deploy.jobs()[job];
            let input = &deploy.inputs()[j.input];
            let outcome = match outcome {
                None => wit::DeployOutcome::NotStarted,
                Some(Ok(Report::Pushed(d))) => wit::DeployOutcome::Deployed((&*d).into()),
                Some(Ok(Report::UpToDate)) => wit::DeployOutcome::UpToDate,
                Some(Ok(Report::WouldChange)) => {
                    wit::DeployOutcome::WouldChange(dry_run_json(input, &j.reference))
                }
                Some(Err(e)) => wit::DeployOutcome::Failed(e.into()),
            };
            wit::DeployResult {
                reference: j.reference.to_string(),
                outcome,
            }
        })
        .collect()
}
