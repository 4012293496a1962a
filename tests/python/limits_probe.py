"""Cost of N open lists in one process: threads, descriptors and memory.

    python3 limits_probe.py sharena|stdlib N

Prints one line of JSON: threads, fds (increase over the empty process;
threads_first after the first list, threads_more from the first to the last),
rss (resident bytes, increase), shm (bytes the segments occupy in /dev/shm).
Each list is made with one small int. The lists are unlinked before exit.
"""
import json
import os
import sys


def counts():
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")), rss


def main():
    kind, n = sys.argv[1], int(sys.argv[2])
    if kind == "sharena":
        from sharena import ShareableList
    else:
        from multiprocessing.shared_memory import ShareableList
        from multiprocessing import resource_tracker
        resource_tracker.ensure_running()  # its pipe is not the lists' cost
    t0, f0, r0 = counts()
    made = [ShareableList([0])]
    t_first = counts()[0]
    made += [ShareableList([i]) for i in range(1, n)]
    t1, f1, r1 = counts()
    shm = 0
    for sl in made:
        st = os.stat("/dev/shm/" + sl.shm.name)
        shm += st.st_blocks * 512
    for sl in made:
        sl.shm.close()
        sl.shm.unlink()
    print(json.dumps({"threads": t1 - t0, "threads_first": t_first - t0, "threads_more": t1 - t_first,
                      "fds": f1 - f0, "rss": r1 - r0, "shm": shm}))


if __name__ == "__main__":
    main()
