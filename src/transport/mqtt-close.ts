import type { MqttClient } from 'mqtt';

/**
 * Ends an MQTT client without hanging on a dead connection. mqtt.js's graceful `end()` waits for
 * every unacknowledged QoS 1/2 publish to be acknowledged ('outgoingEmpty'): when the socket has
 * died and reconnection is off (or never succeeds), that never comes and `endAsync()` never settles.
 * Here: a client that is not connected is ended with force at once; a connected one gets `graceMs`
 * to drain, then its socket is destroyed. Nothing is lost by forcing: the daemons keep their
 * unacknowledged messages in their SQLite outbox and send them again on the next start.
 */
export async function closeMqttClient(client: MqttClient, graceMs = 5000): Promise<'graceful' | 'forced'> {
  if (!client.connected) {
    await client.endAsync(true);
    return 'forced';
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  try {
    const how = await Promise.race([client.endAsync(false).then(() => 'graceful' as const), timedOut]);
    if (how === 'graceful') return how;
  } finally {
    clearTimeout(timer);
  }
  // end() is under way (a second end() would return at once and do nothing): drop the socket.
  client.stream?.destroy();
  return 'forced';
}
