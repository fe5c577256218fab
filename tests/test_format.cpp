// Printing: the expected strings are what PyTorch 1.13 prints for the same tensors.
#include <doctest/doctest.h>

#include <xgrad/xgrad.hpp>

using namespace xg;

TEST_CASE("tensors print as PyTorch prints them") {
  CHECK(to_string(Tensor(xt::xarray<float>{{2.2954f, 2.7556f, 1.5419f}, {1.5731f, 2.1495f, 2.7554f}})) ==
        "tensor([[2.2954, 2.7556, 1.5419],\n        [1.5731, 2.1495, 2.7554]])");
  CHECK(to_string(Tensor(xt::xarray<float>{{1, 1, 0}, {1, 1, 1}})) == "tensor([[1., 1., 0.],\n        [1., 1., 1.]])");
  CHECK(to_string(Tensor(xt::xarray<std::int32_t>{{1, 2}, {30, 4}})) == "tensor([[ 1,  2],\n        [30,  4]])");
  CHECK(to_string(Tensor(xt::xarray<double>{-1.5, 2.25})) == "tensor([-1.5000,  2.2500])");
  CHECK(to_string(Tensor(xt::xarray<float>(2.5f))) == "tensor(2.5000)");
  CHECK(to_string(Tensor(xt::xarray<float>{1e-5f, 1.0f})) == "tensor([1.0000e-05, 1.0000e+00])");
  const xt::xarray<float> cube = xt::reshape_view(xt::arange<float>(24.0f), {2, 3, 4});
  CHECK(to_string(Tensor(cube)) ==
        "tensor([[[ 0.,  1.,  2.,  3.],\n         [ 4.,  5.,  6.,  7.],\n         [ 8.,  9., 10., 11.]],\n\n"
        "        [[12., 13., 14., 15.],\n         [16., 17., 18., 19.],\n         [20., 21., 22., 23.]]])");
}

TEST_CASE("large tensors are summarized with edge items") {
  const xt::xarray<std::int32_t> big = xt::reshape_view(xt::arange<std::int32_t>(2000), {40, 50});
  CHECK(to_string(Tensor(big)) ==
        "tensor([[   0,    1,    2,  ...,   47,   48,   49],\n        [  50,   51,   52,  ...,   97,   98,   99],\n"
        "        [ 100,  101,  102,  ...,  147,  148,  149],\n        ...,\n"
        "        [1850, 1851, 1852,  ..., 1897, 1898, 1899],\n        [1900, 1901, 1902,  ..., 1947, 1948, 1949],\n"
        "        [1950, 1951, 1952,  ..., 1997, 1998, 1999]])");
}

TEST_CASE("shapes and dtypes format") {
  CHECK(fmt::format("{}", Shape{2, 3}) == "(2, 3)");
  CHECK(fmt::format("{}", Shape{4}) == "(4,)");
  CHECK(fmt::format("{}", Shape{}) == "()");
  CHECK(fmt::format("{} {}", DType::f32, DType::i32) == "f32 i32");
}
