# import asyncio.subprocess yields the real subprocess (§5.5).
import asyncio.subprocess as s
s.subprocess.run(['touch', target])
