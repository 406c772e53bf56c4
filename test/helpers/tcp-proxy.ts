/**
 * A TCP proxy a test controls, to simulate a server going away without stopping the machine's
 * Postgres or Redis (other test files share them): cut() refuses new connections and resets the
 * open ones, restore() accepts again on the same port.
 */
import net from "node:net";

/** A running proxy in front of one host:port. */
export interface TcpProxy {
  /** The loopback port clients connect to. */
  readonly port: number;
  /** True between cut() and restore(). */
  readonly isCut: boolean;
  /** Stops listening and destroys every open connection (clients see resets and refusals). */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /** Stops for good. */
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (an ephemeral port) forwarding to `targetHost:targetPort`. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(0);
  let isCut = false;
  const cut = async () => {
    if (isCut) return;
    isCut = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.resetAndDestroy();
    await closed;
  };
  return {
    port,
    get isCut() {
      return isCut;
    },
    cut,
    async restore() {
      if (!isCut) return;
      await listen(port);
      isCut = false;
    },
    close: cut,
  };
}
