# A real Dask scheduler and one worker in this process, on 127.0.0.1 with ephemeral ports and no
# dashboard. Prints the scheduler's address once the worker has joined, then runs until its
# stdin closes (the test's guard kills it in any case).
import asyncio, logging, sys
logging.disable(logging.WARNING)
from distributed import Scheduler, Worker

async def main():
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None, dashboard=False) as s:
        async with Worker(s.address, host="127.0.0.1", nthreads=1, memory_limit=0, dashboard=False) as w:
            while not s.workers:
                await asyncio.sleep(0.05)
            print(s.address, w.address, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
