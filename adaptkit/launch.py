"""How a training run spreads over processes and machines, and the launcher command that starts it: torchrun on CPUs,
`accelerate launch` on GPUs or with an accelerate config, each as its own docs describe. `run`, `--dry-run`,
`advise --emit-recipe` and the cluster exports (slurm, skypilot) all read this one place. No torch is imported here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

from adaptkit.errors import InputError

DEFAULT_PORT = 29500  # torchrun's and accelerate's default rendezvous port
MACHINES_ENV = "ADAPTKIT_MACHINES"  # set for the ranks of a run over several machines: they agree on the work folder


@dataclass(frozen=True)
class Launch:
    """`processes` over every machine (accelerate's num_processes: the recipe's global batch is split over all of
    them), `machines` of `processes / machines` each, this machine's `machine_rank`, and the main machine's address."""

    processes: int = 1
    machines: int = 1
    machine_rank: int = 0
    main_ip: str | None = None
    main_port: int = DEFAULT_PORT
    config: str | None = None  # an accelerate config file (FSDP, DeepSpeed, or the user's own)

    def __post_init__(self):
        if self.machines < 1 or self.processes < 1:
            raise InputError("--num-processes and --num-machines are counts of 1 or more")
        if self.processes % self.machines:
            raise InputError(f"--num-processes {self.processes} over --num-machines {self.machines}: give the processes of "
                             f"all machines together, a multiple of {self.machines} (the same number on each machine)")
        if self.machines == 1 and (self.machine_rank or self.main_ip):
            raise InputError("--machine-rank and --main-process-ip are for a run over several machines: add --num-machines N")
        if not 0 <= self.machine_rank < self.machines:
            raise InputError(f"--machine-rank {self.machine_rank}: this machine's rank is 0 to {self.machines - 1} "
                             f"(0 on the main machine)")
        if not 1 <= self.main_port <= 65535:
            raise InputError(f"--main-process-port {self.main_port} is not a port (1-65535)")
        if self.machines > 1 and not self.main_ip:
            raise InputError(f"a run over {self.machines} machines needs --main-process-ip: the address of machine 0, which "
                             "every machine can reach")

    @property
    def per_machine(self) -> int:
        return self.processes // self.machines

    @property
    def main(self) -> bool:
        """Machine 0: it owns the output folder and writes the results; the others only train."""
        return self.machine_rank == 0

    def flags(self, rank: str | None = None, ip: str | None = None) -> list[str]:
        """The `adaptkit run` flags for this launch; `rank`/`ip` put shell variables in place of this machine's."""
        flags = ["--num-processes", str(self.processes)] if self.processes > 1 else []
        if self.machines > 1:
            flags += ["--num-machines", str(self.machines), "--machine-rank", rank or str(self.machine_rank),
                      "--main-process-ip", ip or str(self.main_ip), "--main-process-port", str(self.main_port)]
        if self.config:
            flags += ["--accelerate-config", self.config]
        return flags

    def launcher(self, gpus: bool, port: int | None = None, rank: str | None = None) -> list[str]:
        """The launcher's argv (after the Python executable) for this machine: accelerate launch on GPUs or with a config,
        torchrun on CPUs (gloo); one machine rendezvous on loopback by address, at `port` (a free one). `rank` puts a
        shell variable in place of this machine's rank."""
        if gpus or self.config:
            command = ["-m", "accelerate.commands.launch", "--num_processes", str(self.processes)]
            command += ["--config_file", self.config] if self.config else ["--multi_gpu"]
            if self.machines > 1:
                command += ["--num_machines", str(self.machines), "--machine_rank", rank or str(self.machine_rank),
                            "--main_process_ip", str(self.main_ip), "--main_process_port", str(self.main_port)]
            return command
        address, where = (self.main_ip, self.main_port) if self.machines > 1 else ("127.0.0.1", port or self.main_port)
        return ["-m", "torch.distributed.run", "--nproc_per_node", str(self.per_machine), "--nnodes", str(self.machines),
                "--node_rank", str(self.machine_rank), "--master_addr", str(address), "--master_port", str(where)]


def layout(gpus: int, per_node: int = 0) -> Launch:
    """`gpus` GPUs in all, `per_node` on each machine (0: all on one): 16 GPUs of 8 per node is two machines."""
    per_node = per_node or gpus
    if gpus <= per_node:
        return Launch(processes=max(gpus, 1))
    if gpus % per_node:
        raise InputError(f"{gpus} GPUs do not fill machines of {per_node} GPUs evenly: give a multiple of {per_node}")
    return Launch(processes=gpus, machines=gpus // per_node, main_ip="$MAIN_IP")


def per_machine_commands(tail: str, launch: Launch) -> dict:
    """What to type on each machine for `launch` (tail: the recipe and its overrides, quoted): adaptkit's own command and
    the accelerate launch it is the same as. Machine ranks and the main address are shell variables."""
    if launch.machines == 1:
        flags = shlex.join(launch.flags())
        return {"layout": f"1 machine x {launch.processes} process(es)",
                "adaptkit": f"adaptkit run {tail} {flags}".rstrip()}
    rank, ip = "$MACHINE_RANK", "$MAIN_IP"
    flags = " ".join(launch.flags(rank=rank, ip=ip))
    on_ip = replace(launch, main_ip=ip)
    accelerate = " ".join(["accelerate launch", *on_ip.launcher(gpus=True, rank=rank)[2:], "-m adaptkit run", tail])
    return {"layout": f"{launch.machines} machines x {launch.per_machine} GPUs = {launch.processes} processes",
            "adaptkit": f"adaptkit run {tail} {flags}",
            "accelerate": accelerate,
            "note": f"run it on every machine at once, MACHINE_RANK 0 to {launch.machines - 1} (0 on the machine at MAIN_IP, "
                    "which writes the run); each machine reads the data and the model itself"}
