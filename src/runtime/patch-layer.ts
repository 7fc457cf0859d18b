type Marked = { [k: symbol]: true | undefined };

/**
 * Replaces a tfjs-layers class's `call` (found from an unbuilt probe instance, which holds no
 * weights) with `make(original)`, once: a second install with the same `mark` is a no-op.
 */
export function patchLayerCall<F extends (...args: never[]) => unknown>(probe: object, mark: symbol, make: (original: F) => F): void {
  const proto = Object.getPrototypeOf(probe) as { call: F };
  if ((proto.call as unknown as Marked)[mark]) return;
  const patched = make(proto.call);
  (patched as unknown as Marked)[mark] = true;
  proto.call = patched;
}
