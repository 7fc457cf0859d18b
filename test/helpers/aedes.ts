import net, { type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

export interface AedesBroker {
  url: string;
  /** Topic of every message a client published, in order (the broker's own $SYS traffic left out). */
  published: string[];
  stop(): Promise<void>;
}

/** An embedded aedes (MQTT 3.1.1 only) over TCP on a free port. */
export async function startAedes(): Promise<AedesBroker> {
  const broker = await Aedes.createBroker();
  const published: string[] = [];
  broker.on('publish', (packet, client) => {
    if (client) published.push(packet.topic);
  });
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    published,
    async stop() {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
