#!/usr/bin/env bash
# Regenerates the pictures in docs/images with the project's own command.
set -euo pipefail
cd "$(dirname "$0")/images"
tinygrad-cnn graph --model lenet5 -o lenet5_forward.svg
tinygrad-cnn graph --model lenet5 -o lenet5_forward.png
tinygrad-cnn graph --model lenet5 --max-nodes 12 -o lenet5_folded.svg
tinygrad-cnn graph --model lenet5 --backward --max-nodes 40 -o lenet5_backward.svg
tinygrad-cnn graph --model vgg --max-nodes 12 -o vgg_folded.svg
tinygrad-cnn gradcheck --demo --graph demo_check.svg > /dev/null
run=$(mktemp -d)
tinygrad-cnn train --no-progress --out "$run" > digits_training.txt
cp "$run/curves.png" digits_curves.png
cp "$run/filters.png" digits_filters.png
cp "$run/feature_maps.png" digits_feature_maps.png
rm -rf "$run"
# receptive fields of LeNet-5 on 28x28, untrained and after 2 epochs on MNIST t10k
mnist="${MNIST_DIR:-../../../shared/data/mnist}"
tinygrad-cnn train --dataset mnist-t10k --data-root "$mnist" --epochs 2 --no-progress \
    --out "$run" > /dev/null
tinygrad-cnn receptive-field --model lenet --params "$run/params.npz" -o receptive_field.png
rm -rf "$run"
rm -f ./*.dot
