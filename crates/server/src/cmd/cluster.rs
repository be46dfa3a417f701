//! CLUSTER, ASKING, READONLY and READWRITE answer as a Redis with `cluster-enabled no` does.
//! A Locus server is a standalone node (it has no cluster mode of its own), so cluster-aware
//! clients probing it get Redis's exact answer, and scripts calling CLUSTER RESET are refused
//! as in Redis.

use super::{Args, CmdError, CmdResult, Ctx};

pub fn disabled(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Err(CmdError::new(
        "ERR This instance has cluster support disabled",
    ))
}
