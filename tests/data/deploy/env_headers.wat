;; A proxy-wasm module (ABI 0.2.1) that shows its VM's environment: on every request it adds one
;; request header "x-wasm-env: NAME=VALUE" per variable that WASI environ_get returns, in order.
;; Used to prove WasmPlugin vmConfig.env (Envoy's vm_config.environment_variables) in the emulator and
;; in Envoy with the same module (tests/test_deploy_wasmplugin.py, envoy-tests/test_deploy_istio_envoy.py).
(module
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  ;; 16: the header name; 32/36: environ count and size; 1024..: pointers, then strings (up to 256 KiB)
  (data (i32.const 16) "x-wasm-env")
  (global $bump (mut i32) (i32.const 262144))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $bump))
    (if (i32.gt_u (i32.add (local.get $p) (local.get $n)) (i32.const 262144000)) (then (return (i32.const 0))))
    (global.set $bump (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $bump) (i32.shl (memory.size) (i32.const 16)))
      (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $bump) (i32.shl (memory.size) (i32.const 16)))
                                                           (i32.const 16)) (i32.const 1))) (i32.const 0))
              (then (return (i32.const 0))))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $count i32) (local $size i32) (local $buf i32) (local $i i32) (local $p i32) (local $len i32)
    (if (call $environ_sizes_get (i32.const 32) (i32.const 36)) (then (return (i32.const 0))))
    (local.set $count (i32.load (i32.const 32)))
    (local.set $size (i32.load (i32.const 36)))
    (local.set $buf (i32.add (i32.const 1024) (i32.shl (local.get $count) (i32.const 2))))
    (if (i32.gt_u (i32.add (local.get $buf) (local.get $size)) (i32.const 262144)) (then (return (i32.const 0))))
    (if (call $environ_get (i32.const 1024) (local.get $buf)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $p (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $len (i32.const 0))
        (block $end
          (loop $scan
            (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $len)))))
            (local.set $len (i32.add (local.get $len) (i32.const 1)))
            (br $scan)))
        (drop (call $add_header (i32.const 0) (i32.const 16) (i32.const 10) (local.get $p) (local.get $len)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))
)
