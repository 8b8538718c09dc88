"""GPU device slots for local Snakemake runs: which device a job runs on, handed out with file locks.

A machine offers `gpus` devices; each is cut into `units` units. A job of a kind that may share a
device `share` ways holds units // share units of one device for its whole life, runs with
CUDA_VISIBLE_DEVICES set to that device, and frees them when it and its command's whole process
tree are gone (a killed job too: the kernel drops a lock when its last holder dies). The lock
folder is the machine's (/tmp/gpuslots or $GPUSLOTS_DIR), shared by every user, so every run on
the machine sees every other. `python -m gpuslots run ... -- COMMAND` is the wrapper the rules
use; `slot_resources()` is what rules/resources.smk asks for the resource sizes and the wrapper
prefix.

Importing this package needs the standard library only (no torch): the rules import it.
"""

from gpuslots.resources import SlotResources, resolve_device, slot_resources
from gpuslots.slots import Holding, LockFolderError, acquire, lock_dir, visible_gpus

__all__ = ["Holding", "LockFolderError", "SlotResources", "acquire", "lock_dir", "resolve_device", "slot_resources",
           "visible_gpus"]
