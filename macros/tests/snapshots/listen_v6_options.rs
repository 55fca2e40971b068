// Input:
// #[wsk_endpoint(
//     kind = "listen",
//     addr = "[fe80::1%3]:443",
//     max_connections = 8,
//     exclusive,
//     dual_stack
// )]
// #[derive(Default)]
// pub(crate) struct Tls(u32);
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

#[derive(Default)]
pub(crate) struct Tls(u32);
const _: () = {
    #[automatically_derived]
    impl ::wsk::__private::ListenEndpoint for Tls {
        const CONFIG: ::wsk::__private::ListenConfig = ::wsk::__private::ListenConfig {
            name: "Tls",
            addr: ::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([
                23u8, 0u8, 1u8, 187u8, 0u8, 0u8, 0u8, 0u8, 254u8, 128u8, 0u8, 0u8, 0u8,
                0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 1u8, 3u8, 0u8, 0u8, 0u8,
            ]),
            max_connections: 8u32,
            exclusive: true,
            v6only: ::core::option::Option::Some(false),
        };
    }
    #[automatically_derived]
    impl ::wsk::Endpoint for Tls {
        fn default_addr(&self) -> ::wsk::SocketAddr {
            ::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([
                23u8, 0u8, 1u8, 187u8, 0u8, 0u8, 0u8, 0u8, 254u8, 128u8, 0u8, 0u8, 0u8,
                0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 1u8, 3u8, 0u8, 0u8, 0u8,
            ])
        }
        fn start_at(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::wsk::SocketAddr,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start_listener(self, __wsk_rt, __wsk_addr)
        }
    }
};
