#include "worker/jobs.h"

namespace kiln::worker {

// The payload back, byte for byte.
proto::WorkerResult run_echo(const proto::Job& job, JobContext&) { return job_ok(job.payload); }

}  // namespace kiln::worker
