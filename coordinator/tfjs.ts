// TensorFlow.js as dpfed uses it: tfjs-core, tfjs-layers and the cpu backend (the wasm backend is loaded by
// the client's tf-backend.ts when chosen). Not the full @tensorflow/tfjs, which adds the graph-model
// converter, tfjs-data and the WebGL backend, none of which runs here, and triples the install.
import '@tensorflow/tfjs-backend-cpu';

export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
