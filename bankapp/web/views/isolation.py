"""`POST /admin/isolation`: Hermitage's cases on the server's own PostgreSQL, for a room (see `bankapp.isolation`)."""

import threading

from flask_openapi3 import Tag

from ... import isolation
from ..problems import Problem
from ..schemas import IsolationOut
from ..schemas import Problem as ProblemOut
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint("isolation", __name__, abp_tags=[Tag(name="admin", description="the isolation lab")])

#: One run at a time per process: each opens four connections of its own.
_one_at_a_time = threading.Lock()


@bp.post("/admin/isolation", responses={200: IsolationOut, 409: ProblemOut, 503: ProblemOut})
def run_isolation():
    """Run Hermitage's anomaly cases as real sessions stepped in a fixed order under read committed, repeatable
    read and serializable, in a scratch schema of the server's database (created and dropped), and judge each
    cell from what the sessions read, wrote and raised, beside Hermitage's published PostgreSQL result.

    409 `store` with the memory store (there is no database to run them on); 503 while another run is going.
    """
    config = lab().config()
    if config.store != "postgres":
        raise Problem(
            409,
            "isolation-needs-postgres",
            "The isolation lab needs the postgres store",
            "store: this server runs the memory store; isolation levels are PostgreSQL's: start it with "
            "--store postgres --database-url URL, or run `bankapp isolation --database-url URL`",
            setting="store",
        )
    if not _one_at_a_time.acquire(blocking=False):
        raise Problem(
            503,
            "isolation-busy",
            "Isolation run busy",
            "another isolation run is going on in this worker; try again when it has ended",
            headers={"Retry-After": "1"},
        )
    try:
        url = config.database_url
        assert url is not None, "Config refuses store=postgres without database_url"
        return isolation.run(url).to_json()
    except isolation.IsolationError as error:
        raise Problem(
            503, "isolation-failed", "Isolation run failed", str(error), headers={"Retry-After": "1"}
        ) from None
    finally:
        _one_at_a_time.release()
