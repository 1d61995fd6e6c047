import os

import pytest

from cinc2020 import cpus
from cinc2020.cpus import available_cpus, cgroup_cpu_limit


def tree(tmp_path, cgroup_lines, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("\n".join(cgroup_lines) + "\n")
    root = tmp_path / "sys-fs-cgroup"
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text + "\n")
    root.mkdir(exist_ok=True)
    return proc, root


def test_cgroup_v2_quota_in_the_process_cgroup_or_a_parent(tmp_path):
    proc, root = tree(tmp_path, ["0::/machine/job"], {"machine/job/cpu.max": "max 100000",
                                                       "machine/cpu.max": "150000 100000"})
    assert cgroup_cpu_limit(proc, root) == 1.5
    assert available_cpus(proc, root) == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v2_without_a_quota(tmp_path):
    proc, root = tree(tmp_path, ["0::/"], {"cpu.max": "max 100000"})
    assert cgroup_cpu_limit(proc, root) is None
    assert available_cpus(proc, root) == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    limited = tmp_path / "limited"
    proc, root = tree(limited, ["12:cpu,cpuacct:/docker/abc", "11:memory:/docker/abc"],
                      {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000",
                       "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(proc, root) == 0.5
    assert available_cpus(proc, root) == 1                  # half a core still needs one thread
    free = tmp_path / "free"
    proc, root = tree(free, ["4:cpu,cpuacct:/"], {"cpu,cpuacct/cpu.cfs_quota_us": "-1",
                                                  "cpu,cpuacct/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(proc, root) is None


def test_container_view_reads_the_root_of_its_own_hierarchy(tmp_path):
    """Inside a container the host's path in /proc/self/cgroup does not exist; the mount's root holds the quota."""
    proc, root = tree(tmp_path, ["0::/system.slice/libpod-1234.scope"], {"cpu.max": "100000 100000"})
    assert cgroup_cpu_limit(proc, root) == 1.0 and available_cpus(proc, root) == 1


def test_affinity_caps_the_count(tmp_path, monkeypatch):
    proc, root = tree(tmp_path, ["0::/"], {"cpu.max": "800000 100000"})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert available_cpus(proc, root) == 1


@pytest.mark.parametrize("share", [1, 2])
def test_training_shares_the_available_cores_between_processes(monkeypatch, share):
    import torch
    monkeypatch.setattr(cpus, "available_cpus", lambda: 4)
    before = torch.get_num_threads()
    try:
        assert cpus.use_threads(cpus.training_threads(share)) == 4 // share == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_thread_count_set_by_the_user_stands_for_classifying_not_for_training(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(cpus, "available_cpus", lambda: 4)
    assert cpus.inference_threads() == 3
    assert cpus.training_threads() == 4       # torchrun sets OMP_NUM_THREADS=1 in its processes
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpus.inference_threads() == cpus.INFERENCE_THREADS == 1


def test_the_driver_classifies_on_one_thread():
    import subprocess
    import sys
    code = ("import torch; from run_12ECG_classifier import load_12ECG_model; load_12ECG_model('model'); "
            "print(torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=root).stdout.strip() == "1"


def test_the_package_leaves_openmp_waits_to_pytorch():
    # Passive waits made a training epoch 2.2 to 2.8 times as long (cinc2020/cpus.py): the package must not
    # ask for them (a user may).
    import subprocess
    import sys
    code = ("import os, train_model, run_12ECG_classifier, cinc2020.train; "
            "print(os.environ.get('OMP_WAIT_POLICY', 'unset'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__))).stdout.strip() == "unset"
