import net from 'node:net';

/**
 * A free loopback TCP port: bind 0, read it, release it. For servers that cannot listen on 0 and
 * report back (a spawned Mosquitto, a child process's HTTP API).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
