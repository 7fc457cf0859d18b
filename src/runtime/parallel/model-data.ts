import * as tf from '@tensorflow/tfjs';

/** A model's topology and weights as structured-clone data: how a replica crosses into a worker. */
export interface ModelData {
  /** `model.toJSON(null, false)`, or a whole model.json with a modelTopology field. */
  modelJson: object;
  /** Every weight, in `model.weights` order. */
  weights: Array<{ shape: number[]; data: Float32Array }>;
}

/** Copies an in-memory model's topology and current weights out as plain data. */
export function modelData(model: tf.LayersModel): ModelData {
  return {
    modelJson: model.toJSON(null, false) as object,
    weights: model.weights.map((w) => {
      const t = w.read();
      return { shape: t.shape.slice(), data: (t.dataSync() as Float32Array).slice() };
    }),
  };
}

/** Builds a replica from plain data (inside a worker). */
export async function modelFromData(d: ModelData): Promise<tf.LayersModel> {
  const json = d.modelJson as { modelTopology?: unknown };
  const topology = (json.modelTopology ?? json) as tf.io.ModelJSON['modelTopology'];
  const model = await tf.models.modelFromJSON({ modelTopology: topology });
  tf.tidy(() => model.setWeights(d.weights.map((w) => tf.tensor(w.data, w.shape, 'float32'))));
  return model;
}
