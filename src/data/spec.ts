import { EdgektError } from '../core/errors.js';

/** Where Debian's `dataset-fashion-mnist` package installs the IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export type DatasetSpec =
  | { kind: 'mnist' }
  | { kind: 'fashion-mnist'; dir: string }
  | { kind: 'idx'; dir: string }
  | { kind: 'folder'; dir: string };

/** Parses `mnist`, `fashion-mnist[:DIR]`, `idx:DIR` or `folder:DIR`. */
export function parseDatasetSpec(spec: string): DatasetSpec {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const kind = (colon < 0 ? s : s.slice(0, colon)).toLowerCase();
  const arg = colon < 0 ? undefined : s.slice(colon + 1);
  const needDir = (): string => {
    if (!arg) throw new EdgektError('EDGEKT_ERR_DATA_SPEC', `dataset spec "${spec}" needs a directory: ${kind}:DIR`, { spec });
    return arg;
  };
  switch (kind) {
    case 'mnist':
      if (arg !== undefined) throw new EdgektError('EDGEKT_ERR_DATA_SPEC', `dataset spec "mnist" takes no argument (use idx:DIR for IDX files)`, { spec });
      return { kind: 'mnist' };
    case 'fashion-mnist':
      return { kind: 'fashion-mnist', dir: arg || FASHION_MNIST_DIR };
    case 'idx':
      return { kind: 'idx', dir: needDir() };
    case 'folder':
      return { kind: 'folder', dir: needDir() };
    default:
      throw new EdgektError(
        'EDGEKT_ERR_DATA_SPEC',
        `unknown dataset spec "${spec}"; expected mnist, fashion-mnist[:DIR], idx:DIR or folder:DIR`,
        { spec },
      );
  }
}
